# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for the Gatehouse bench (bench/run.sh) and the
# OpenSSH side of it (setup.sh, measure.sh, teardown.sh in this directory).
# Sourced, never run directly. Everything the bench creates lives in $BENCH_DIR.

set -euo pipefail
umask 077
shopt -s nullglob

# ---- settings (environment overrides) ---------------------------------------
# BENCH_DIR: state dir (keys, configs, pid files, logs, results). Give your own
# (e.g. `export BENCH_DIR=$(mktemp -d)`) or take the default under $TMPDIR.
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/gatehouse-bench}
BENCH_USER=${BENCH_USER:-bastiontest}
BIND_ADDR=${BIND_ADDR:-127.0.0.1}
TARGET_PORT=${TARGET_PORT:-2201}
JUMP_PORT=${JUMP_PORT:-2202}
SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
SSH_BIN=${SSH_BIN:-ssh}
# Further target sshds (target2, target3, ...) on these ports, for ramps of thousands of
# sessions: same host key, CA and user as "target", one listener each (space-separated).
EXTRA_TARGET_PORTS=${EXTRA_TARGET_PORTS:-}
# sshd MaxStartups (pre-auth connections): Gatehouse opens one upstream
# connection per session, up to CONC_N at once.
SSHD_MAX_STARTUPS=${SSHD_MAX_STARTUPS:-4096}
# GECOS of the user setup.sh creates; teardown.sh REMOVE_USER=1 only deletes a user with it.
USER_COMMENT="gatehouse bench user"
# Lifetime of the short-lived user certificate; run.sh re-signs before each block.
CERT_LIFETIME=${CERT_LIFETIME:-5m}

# Saved by setup.sh: the values the running sshds were started with win
# (unless BENCH_ENV_IGNORE=1, used by run.sh before it rewrites the file).
if [[ ${BENCH_ENV_IGNORE:-0} != 1 && -f $BENCH_DIR/bench.env ]]; then
  # shellcheck disable=SC1091
  . "$BENCH_DIR/bench.env"
fi

K=$BENCH_DIR/keys
ETC=$BENCH_DIR/etc
RUN=$BENCH_DIR/run
LOGD=$BENCH_DIR/log
SSH_CFG=$ETC/ssh_config

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case $BIND_ADDR in
  127.*) ;;
  *) die "BIND_ADDR=$BIND_ADDR is not a loopback (127.0.0.0/8) address" ;;
esac

now() { printf '%s\n' "${EPOCHREALTIME:-$(date +%s.%N)}"; }

# pid_is_ours PIDFILE CONFIG -> prints the PID when the pid file names a live
# sshd that was started with -f CONFIG (so we never signal anything else).
pid_is_ours() {
  local pidfile=$1 cfg=$2 pid cmd
  [[ -r $pidfile ]] || return 1
  read -r pid < "$pidfile" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"-f $cfg "* || $cmd == *"-f $cfg" ]] || return 1
  printf '%s\n' "$pid"
}

# tree_pids ROOT -> ROOT and all its descendants, one per line.
tree_pids() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = 1; q[1] = root; out = root
      for (i = 1; i <= n; i++) {
        m = split(kids[q[i]], c, " ")
        for (j = 1; j <= m; j++) { q[++n] = c[j]; out = out "\n" c[j] }
      }
      print out
    }'
}

# mem_tree ROOT -> "RSS_KB PSS_KB NPROCS" summed over ROOT and its descendants
# (VmRSS from /proc/PID/status, Pss from /proc/PID/smaps_rollup).
mem_tree() {
  tree_pids "$1" | awk '
    { s = "/proc/" $1 "/status"; rss = ""
      while ((getline l < s) > 0) if (l ~ /^VmRSS:/) { split(l, f, " "); rss = f[2]; break }
      close(s)
      if (rss == "" && (getline l < s) < 0) next # gone meanwhile (or unreadable)
      close(s)
      r = "/proc/" $1 "/smaps_rollup"
      while ((getline l < r) > 0) if (l ~ /^Pss:/) { split(l, f, " "); tp += f[2]; break }
      close(r)
      tr += rss; n++ }
    END { printf "%d %d %d\n", tr, tp, n }'
}

# target_names -> "target target2 ..." (every target sshd of the bench, by pid-file name)
target_names() {
  local j=1 p out=target
  for p in $EXTRA_TARGET_PORTS; do j=$((j + 1)) out+=" target$j"; done
  printf '%s\n' "$out"
}
# target_port NAME -> its port
target_port() {
  local j=1 p
  [[ $1 == target ]] && { printf '%s\n' "$TARGET_PORT"; return; }
  for p in $EXTRA_TARGET_PORTS; do
    j=$((j + 1))
    [[ $1 == "target$j" ]] && { printf '%s\n' "$p"; return; }
  done
  return 1
}

# ---- will a ramp fit? ----------------------------------------------------------
# Per-session costs measured on the development machine (OpenSSH 9.2, 2026-12-03), in kB of
# PSS, and what each session holds. Override to redo the arithmetic for another machine.
RAMP_KB_TARGET=${RAMP_KB_TARGET:-2100}         # target side: sshd monitor + sshd user child + sh (measured 1970-2000)
RAMP_KB_BASTION=${RAMP_KB_BASTION:-140}        # Gatehouse (measured 138 at 4,095 sessions, 162 at 1,000)
RAMP_KB_CLIENT_OPENSSH=${RAMP_KB_CLIENT_OPENSSH:-1500} # one ssh -tt client (measured 1390)
RAMP_KB_CLIENT_RUSSH=${RAMP_KB_CLIENT_RUSSH:-80}       # one session of benches/sessions.rs (measured 76)
RAMP_RESERVE_MB=${RAMP_RESERVE_MB:-2048}       # left for everything else on the machine
RAMP_FDS_BASTION=${RAMP_FDS_BASTION:-3}        # Gatehouse's open files per session (client, target, recording)
# ramp_fits N CLIENT(openssh|russh) BASTION_NOFILE -> 0 when N sessions fit in the memory
# available now, the process table, the ptys and the bastion's open-file limit; prints the
# arithmetic.
ramp_fits() {
  local n=$1 client=$2 nofile=$3 avail ckb need pidmax procs nproc_need fd_need ok=0
  avail=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  if [[ $client == russh ]]; then ckb=$RAMP_KB_CLIENT_RUSSH; else ckb=$RAMP_KB_CLIENT_OPENSSH; fi
  need=$((n * (RAMP_KB_TARGET + RAMP_KB_BASTION + ckb) + RAMP_RESERVE_MB * 1024))
  printf 'memory: %d sessions x (%d kB target + %d kB Gatehouse + %d kB %s client) + %d MiB reserve = %d MiB; available now %d MiB\n' \
    "$n" "$RAMP_KB_TARGET" "$RAMP_KB_BASTION" "$ckb" "$client" "$RAMP_RESERVE_MB" "$((need / 1024))" "$((avail / 1024))"
  ((need <= avail)) || ok=1
  pidmax=$(cat /proc/sys/kernel/pid_max)
  procs=$(ps -e --no-headers | wc -l)
  [[ $client == openssh ]] && nproc_need=$((n * 4)) || nproc_need=$((n * 3))
  printf 'processes: %d sessions x %d (sshd monitor, sshd user child, sh%s) + %d running = %d; kernel.pid_max %d\n' \
    "$n" "$((nproc_need / n))" "$([[ $client == openssh ]] && echo ', ssh client')" "$procs" "$((nproc_need + procs))" "$pidmax"
  ((nproc_need + procs < pidmax)) || ok=1
  # every session's shell on a target holds a pty (kernel.pty.max, 4096 by default)
  local ptymax ptynr
  ptymax=$(cat /proc/sys/kernel/pty/max) ptynr=$(cat /proc/sys/kernel/pty/nr)
  printf 'ptys: %d sessions + %d in use = %d; kernel.pty.max %d%s\n' "$n" "$ptynr" "$((n + ptynr))" "$ptymax" \
    "$( ((n + ptynr <= ptymax)) || echo " (raise it: sysctl -w kernel.pty.max=$(((n + ptynr) * 5 / 4)))")"
  ((n + ptynr <= ptymax)) || ok=1
  fd_need=$((n * RAMP_FDS_BASTION + 256))
  printf 'open files: %d sessions x %d + 256 = %d; Gatehouse may open %d\n' "$n" "$RAMP_FDS_BASTION" "$fd_need" "$nofile"
  ((fd_need <= nofile)) || ok=1
  return "$ok"
}

# ---- CPU accounting -----------------------------------------------------------
# Each sshd we start goes into a private cgroup (children inherit it), so the
# CPU of the listener and of every connection process, reaped or not, is read
# exactly. cgroup v2 (pure, or the "unified" mount of a hybrid host) first,
# v1 cpuacct otherwise; without either, run.sh falls back to /proc/PID/stat.
cg_root() {
  local d
  for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    if [[ -f $d/cgroup.controllers && -w $d ]]; then printf '%s' "$d"; return 0; fi
  done
  if [[ -f /sys/fs/cgroup/cpuacct/cpuacct.usage && -w /sys/fs/cgroup/cpuacct ]]; then
    printf '%s' /sys/fs/cgroup/cpuacct; return 0
  fi
  return 1
}
# cg_attach NAME PID -> move PID into this bench's cgroup NAME; records the
# cgroup dir in $RUN/NAME.cgroup. Failure only loses exact CPU accounting.
cg_attach() {
  local root dir
  root=$(cg_root) || { log "no writable cgroup hierarchy: CPU figures from /proc instead"; return 0; }
  dir=$root/gatehouse-bench-$(printf '%s' "$BENCH_DIR" | cksum | cut -d' ' -f1)-$1
  if mkdir -p "$dir" 2> /dev/null && echo "$2" > "$dir/cgroup.procs" 2> /dev/null; then
    printf '%s\n' "$dir" > "$RUN/$1.cgroup"
  else
    log "could not use cgroup $dir: CPU figures from /proc instead"
    rmdir "$dir" 2> /dev/null || true
    rm -f "$RUN/$1.cgroup"
  fi
}
# cg_remove NAME -> remove the cgroup once it is empty (teardown)
cg_remove() {
  local dir
  [[ -f $RUN/$1.cgroup ]] || return 0
  read -r dir < "$RUN/$1.cgroup"
  if [[ $dir == */gatehouse-bench-* ]] && { [[ ! -d $dir ]] || rmdir "$dir" 2> /dev/null; }; then
    rm -f "$RUN/$1.cgroup"
  else
    log "cgroup $dir not removed (processes left in it?)"
  fi
}
# cg_cpu_ns DIR -> cumulative CPU time (ns) of everything that ran in cgroup DIR
cg_cpu_ns() {
  if [[ -f $1/cpu.stat ]]; then
    awk '$1 == "usage_usec" { printf "%.0f\n", $2 * 1000 }' "$1/cpu.stat"
  elif [[ -f $1/cpuacct.usage ]]; then
    cat "$1/cpuacct.usage"
  else
    echo 0
  fi
}
# proc_cpu_ns PID -> utime+stime of PID plus the children it has reaped
# (processes it never waits for are missed; good enough for one process).
proc_cpu_ns() {
  local s
  [[ -n $1 && -r /proc/$1/stat ]] || { echo 0; return; }
  s=$(< "/proc/$1/stat")
  s=${s##*) }
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($12 + $13 + $14 + $15) / t * 1e9 }' <<< "$s"
}

# port_listening PORT -> true when anything listens on TCP PORT (any address).
port_listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
# port_pid PORT -> PID of the process listening on TCP PORT (empty if none)
port_pid() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true; }
# free_port START -> START, or the next port after it that nothing listens on
free_port() {
  local p=$1
  while port_listening "$p"; do p=$((p + 1)); ((p < 65000)) || die "no free port from $1"; done
  printf '%s\n' "$p"
}

# sign_cert OUT VALIDITY PRINCIPALS -> signs the bench user key with the user CA.
sign_cert() {
  local out=$1 validity=$2 principals=$3 tmp
  tmp=$(mktemp -d "$K/sign.XXXXXX")
  cp "$K/user_ed25519.pub" "$tmp/u.pub"
  ssh-keygen -q -s "$K/user_ca" -I "gatehouse-bench-$BENCH_USER-$(date +%s)" \
    -n "$principals" -V "$validity" -z "$(date +%s)" "$tmp/u.pub"
  chmod 644 "$tmp/u-cert.pub"
  mv -f "$tmp/u-cert.pub" "$out"
  rm -rf "$tmp"
}

fresh_cert() { sign_cert "$K/user_cert.pub" "-1m:+$CERT_LIFETIME" "$BENCH_USER"; }

# auth_checks -> prints "check<TAB>expected<TAB>got" lines; returns 1 on mismatch.
# Uses separate client configs so that exactly one certificate is offered.
auth_checks() {
  local fail=0 name cfg via expect rc got
  fresh_cert
  while read -r name cfg via expect; do
    rc=0
    if [[ $via == jump ]]; then
      "$SSH_BIN" -F "$ETC/$cfg" -J jump target true < /dev/null > /dev/null 2>&1 || rc=$?
    else
      "$SSH_BIN" -F "$ETC/$cfg" target true < /dev/null > /dev/null 2>&1 || rc=$?
    fi
    if ((rc == 0)); then got=accepted; else got="refused(rc=$rc)"; fi
    [[ $got == "$expect"* ]] || fail=1
    printf '%s\t%s\t%s\n' "$name" "$expect" "$got"
  done <<'EOF'
valid-cert-direct ssh_config direct accepted
valid-cert-via-jump ssh_config jump accepted
expired-cert ssh_config.expired direct refused
wrong-principal-cert ssh_config.wrongprincipal direct refused
plain-key-no-cert ssh_config.nocert direct refused
EOF
  return "$fail"
}
