#!/usr/bin/env bash
# teardown.sh — stop the Gatehouse instances bench/run.sh started and the sshds
# that setup.sh started, and only those: each PID comes from its pid file in
# $BENCH_DIR/run and must still be the process started with this bench's
# config. The sshds' connection processes (descendants) go too.
#   PURGE=1        also delete $BENCH_DIR (keys, configs, logs, results)
#   REMOVE_USER=1  also delete the bench user, if setup.sh created it (by its comment)
# Idempotent: running it again when nothing is up is fine.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"

if [[ ! -f $BENCH_DIR/bench.env ]]; then
  log "no bench at BENCH_DIR=$BENCH_DIR (nothing to stop)"
  exit 0
fi

# sshd processes under ROOT (ROOT excluded), checked by name before signalling.
sshd_descendants() {
  local p
  for p in $(tree_pids "$1"); do
    [[ $p == "$1" ]] && continue
    [[ $(cat "/proc/$p/comm" 2> /dev/null) == sshd ]] && printf '%s\n' "$p"
  done
  return 0
}

stopped=0
# Gatehouse instances bench/run.sh started: pid files $RUN/gatehouse-NAME.pid,
# each next to a .conf file holding the config path it was started with.
for pidfile in "$RUN"/gatehouse-*.pid; do
  name=$(basename "$pidfile" .pid)
  cfg=$(cat "$RUN/$name.conf" 2> /dev/null || true)
  pid=$(cat "$pidfile" 2> /dev/null || true)
  if [[ $pid =~ ^[0-9]+$ && -n $cfg && -r /proc/$pid/cmdline ]] &&
    [[ $(tr '\0' ' ' < "/proc/$pid/cmdline") == *" serve --config $cfg"* ]]; then
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2> /dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2> /dev/null; then log "$name: still alive, SIGKILL $pid"; kill -KILL "$pid" 2> /dev/null || true; fi
    stopped=$((stopped + 1))
  else
    log "$name: not running"
  fi
  rm -f "$pidfile" "$RUN/$name.conf"
  sleep 0.2
  cg_remove "$name"
done
# every target sshd setup.sh configured (target, target2, ...), whatever this run's count
specs=("jump:$ETC/sshd_jump.conf")
for cfg in "$ETC"/sshd_target*.conf; do
  name=${cfg##*/sshd_} name=${name%.conf}
  specs+=("$name:$cfg")
done
for spec in "${specs[@]}"; do
  name=${spec%%:*} cfg=${spec#*:}
  pidfile=$RUN/$name.pid
  if pid=$(pid_is_ours "$pidfile" "$cfg"); then
    kids=$(sshd_descendants "$pid" | tr '\n' ' ')
    log "$name: stopping sshd pid $pid${kids:+ and its connection processes $kids}"
    # shellcheck disable=SC2086
    kill -TERM "$pid" $kids 2> /dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
    if pid_is_ours "$pidfile" "$cfg" > /dev/null; then
      log "$name: still alive, SIGKILL $pid"
      kill -KILL "$pid" 2> /dev/null || true
    fi
    stopped=$((stopped + 1))
  elif [[ -e $pidfile ]]; then
    log "$name: pid file is stale (no matching sshd), removing it"
  else
    log "$name: not running"
  fi
  rm -f "$pidfile"
  sleep 0.2
  cg_remove "$name"
done
log "stopped $stopped instance(s)"

if [[ ${REMOVE_USER:-0} == 1 ]]; then
  if [[ $(getent passwd "$BENCH_USER" | cut -d: -f5) == "$USER_COMMENT" ]]; then
    if userdel -r "$BENCH_USER" 2> /dev/null; then
      log "removed user $BENCH_USER"
    else
      log "could not remove user $BENCH_USER (still has processes?)"
    fi
  elif id "$BENCH_USER" > /dev/null 2>&1; then
    log "user $BENCH_USER was not created by setup.sh (comment differs); leaving it"
  fi
fi

if [[ ${PURGE:-0} == 1 ]]; then
  # only a directory that setup.sh populated (bench.env present)
  [[ -f $BENCH_DIR/bench.env && -d $BENCH_DIR/keys ]] || die "refusing to delete $BENCH_DIR"
  rm -rf -- "$BENCH_DIR"
  log "deleted $BENCH_DIR"
fi
