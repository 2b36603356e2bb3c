#!/usr/bin/env bash
# bench/run.sh — the Gatehouse benchmark, one command, on loopback:
#   a real OpenSSH sshd as the target, an OpenSSH sshd as a plain jump host
#   (ssh -J), and Gatehouse (release build) twice: recording on (the normal
#   configuration) and recording off (see README), each with a live grant.
# Measures session setup, text and binary throughput, idle interactive sessions
# (1,000 by default; SESSIONS, over TARGETS target sshds), 20 large recorded transfers in a row (close check) and the access
# decision with 100,000 grants (cargo bench --bench decide), then prints one
# markdown table with ratios against the jump host. Stops everything it
# started when it ends, also on failure. See bench/README.md.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_ROOT/.." && pwd)
O=$BENCH_ROOT/openssh
export BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/gatehouse-bench}
T_START=$EPOCHREALTIME

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (it creates a local user and runs sshd with privilege separation)"
command -v cargo > /dev/null || die "cargo not found (a Rust toolchain is needed to build Gatehouse)"

QUICK=${QUICK:-0}
export QUICK
BUILD=${BUILD:-1}                 # 0: use the existing target/release/gatehouse
DECIDE=${DECIDE:-1}               # 0: skip cargo bench --bench decide
SEARCH=${SEARCH:-0}               # 1: also run cargo bench --bench search (CORPUS_GIB, default 10)
NOREC=${NOREC:-1}                 # 0: no second Gatehouse with recording off
NOFILE=${NOFILE:-65536}           # Gatehouse's open-file limit, as LimitNOFILE in deploy/gatehouse.service
KEEP=${KEEP:-0}                   # 1: leave the sshds and Gatehouse running at the end
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$REPO/target/release/gatehouse}
# Idle interactive sessions held at once through Gatehouse, and the target sshds they are
# spread over (one sshd costs ~30 ms of CPU per login; each further one listens on its own
# port). Up to 1,000 they are OpenSSH clients (comparable with the jump host); above, the
# sessions come from one process (benches/sessions.rs): CONC_CLIENT=openssh|russh|auto.
SESSIONS=${SESSIONS:-${CONC_N_BASTION:-1000}}
[[ $SESSIONS =~ ^[1-9][0-9]*$ ]] || die "SESSIONS=$SESSIONS is not a positive number"
TARGETS=${TARGETS:-$(((SESSIONS + 999) / 1000 < 8 ? (SESSIONS + 999) / 1000 : 8))}
[[ $TARGETS =~ ^[1-9][0-9]*$ ]] || die "TARGETS=$TARGETS is not a positive number"
CONC_CLIENT=${CONC_CLIENT:-auto}
[[ $CONC_CLIENT == auto ]] && { ((SESSIONS > 1000)) && CONC_CLIENT=russh || CONC_CLIENT=openssh; }
[[ $CONC_CLIENT == openssh || $CONC_CLIENT == russh ]] || die "CONC_CLIENT=$CONC_CLIENT: openssh, russh or auto"
export CONC_N_BASTION=$SESSIONS CONC_CLIENT
SECTIONS=${SECTIONS:-auth latency throughput concurrency close}
# Refuse a ramp the machine cannot hold before starting anything (measure.sh checks again
# right before the ramp, with the memory available then).
if [[ " $SECTIONS " == *" concurrency "* ]]; then
  # shellcheck source=openssh/common.sh
  hard=$(ulimit -Hn)
  [[ $hard == unlimited || $hard -gt $NOFILE ]] && hard=$NOFILE # what gh_start gives Gatehouse
  fit=$(. "$O/common.sh" && ramp_fits "$SESSIONS" "$CONC_CLIENT" "$hard") ||
    die "SESSIONS=$SESSIONS does not fit on this machine:
$fit"
  log "ramp of $SESSIONS sessions ($CONC_CLIENT clients, $TARGETS target sshd(s)) fits: $(tr '\n' ';' <<< "$fit")"
fi

# ---- build -------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
  log "building Gatehouse (cargo build --release; waits if another build holds the lock)"
  (cd "$REPO" && cargo build --release --bin gatehouse) >&2 || die "cargo build --release failed"
fi
# The decide bench is built now, from the same sources as the binary under
# test, and its executable is run after the measurements (what
# `cargo bench --bench decide` does), so that a source change made meanwhile
# by someone else cannot trigger a rebuild in the middle of the bench.
DECIDE_EXE=
if [[ $DECIDE == 1 ]]; then
  log "building the decide bench (cargo bench --bench decide --no-run)"
  if (cd "$REPO" && cargo bench --bench decide --no-run --message-format=json-render-diagnostics) > "${TMPDIR:-/tmp}/gatehouse-bench-decide-build.$$.json"; then
    DECIDE_EXE=$(perl -ne 'print "$1\n" if /"target":\{[^}]*"name":"decide"[^}]*"kind":\["bench"\].*"executable":"([^"]+)"/ || /"kind":\["bench"\][^}]*"name":"decide".*"executable":"([^"]+)"/' "${TMPDIR:-/tmp}/gatehouse-bench-decide-build.$$.json" | tail -n1)
  fi
  rm -f "${TMPDIR:-/tmp}/gatehouse-bench-decide-build.$$.json"
  if [[ -z $DECIDE_EXE || ! -x $DECIDE_EXE ]]; then
    log "the decide bench does not build: its row will say so"
    DECIDE=failed
  fi
fi
# The load client for ramps above 1,000 sessions, built the same way (SESSIONS_EXE: a build
# to use instead).
if [[ $CONC_CLIENT == russh && -z ${SESSIONS_EXE:-} ]]; then
  log "building the session load client (cargo bench --bench sessions --no-run)"
  j=${TMPDIR:-/tmp}/gatehouse-bench-sessions-build.$$.json
  if (cd "$REPO" && cargo bench --bench sessions --no-run --message-format=json-render-diagnostics) > "$j"; then
    SESSIONS_EXE=$(perl -ne 'print "$1\n" if /"kind":\["bench"\][^}]*"name":"sessions".*"executable":"([^"]+)"/ || /"name":"sessions"[^}]*"kind":\["bench"\].*"executable":"([^"]+)"/' "$j" | tail -n1)
  fi
  rm -f "$j"
fi
if [[ $CONC_CLIENT == russh ]]; then
  [[ -n ${SESSIONS_EXE:-} && -x $SESSIONS_EXE ]] || die "the session load client does not build (cargo bench --bench sessions --no-run)"
  export SESSIONS_EXE
fi
[[ -x $GATEHOUSE_BIN ]] || die "no Gatehouse binary at $GATEHOUSE_BIN"

# ---- leftovers of an earlier run, ports --------------------------------------
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
if [[ -f $BENCH_DIR/bench.env ]]; then
  "$O/teardown.sh" || true # stops only what an earlier (killed) run of this bench left
  rm -f "$BENCH_DIR/bench.env"
fi
# shellcheck source=openssh/common.sh
. "$O/common.sh"
# Ports: the defaults (or the values given), else the next free one: other
# work on the machine may hold them.
TARGET_PORT=$(free_port "$TARGET_PORT")
JUMP_PORT=$(free_port "$((JUMP_PORT > TARGET_PORT ? JUMP_PORT : TARGET_PORT + 1))")
BASTION_PORT=${BASTION_PORT:-2222}
BASTION_PORT=$(free_port "$BASTION_PORT")
BASTION2_PORT=$(free_port "$((BASTION_PORT + 1))")
EXTRA_TARGET_PORTS=
p=$((BASTION2_PORT + 10))
for ((j = 2; j <= TARGETS; j++)); do
  p=$(free_port "$p")
  EXTRA_TARGET_PORTS+="${EXTRA_TARGET_PORTS:+ }$p"
  p=$((p + 1))
done
export TARGET_PORT JUMP_PORT EXTRA_TARGET_PORTS

cleanup() {
  local rc=$?
  if [[ $KEEP == 1 ]]; then
    log "KEEP=1: leaving the sshds and Gatehouse running; stop them with: BENCH_DIR=$BENCH_DIR $O/teardown.sh"
  else
    log "teardown"
    "$O/teardown.sh" || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Gatehouse deployments (fresh each run) ----------------------------------
GH=$BENCH_DIR/gatehouse          # recording on: the normal configuration
GH2=$BENCH_DIR/gatehouse-norec   # recording off (emulated, see README)
mkdir -p "$RUN" "$LOGD" "$ETC" "$BENCH_DIR/results"
chmod 711 "$BENCH_DIR"
gh_init() { # DIR PORT
  rm -rf "$1"
  "$GATEHOUSE_BIN" init "$1" > "$LOGD/$(basename "$1").init.log" 2>&1 || { cat "$LOGD/$(basename "$1").init.log" >&2; die "gatehouse init $1 failed"; }
  local conf=$1/gatehouse.toml
  grep -q '^listen *=' "$conf" || die "no listen line in $conf"
  sed -i "s|^listen *=.*|listen   = \"$BIND_ADDR:$2\"|" "$conf"
  # One bench user holds every session of the concurrency run.
  grep -q '^connections_per_user *=' "$conf" || die "no [limits] connections_per_user line in $conf"
  sed -i "s|^connections_per_user *=.*|connections_per_user = 100000   # bench: one user holds every session|" "$conf"
  # The ramp opens up to 1,000 logins at once from one address.
  grep -q '^max_startups *=' "$conf" || die "no [penalties] max_startups line in $conf"
  sed -i "s|^max_startups *=.*|max_startups = 2000   # bench: the whole ramp logs in from one address|" "$conf"
  # Every session of the ramp is a connection, plus the bench's own.
  grep -q '^max_connections *=' "$conf" || die "no [limits] max_connections line in $conf"
  local maxc=$((SESSIONS + 1000 > 10000 ? SESSIONS + 1000 : 10000))
  sed -i "s|^max_connections *=.*|max_connections = $maxc   # bench: the ramp and the bench's own connections|" "$conf"
  # The probes that wait for ports and the setup-time runs open connections that never log in;
  # the penalty box would take the bench driver for a scanner.
  grep -q '^exempt *=' "$conf" || die "no [penalties] exempt line in $conf"
  sed -i "s|^exempt *=.*|exempt = [\"$BIND_ADDR\"]   # bench: the driver's own address|" "$conf"
}
gh_init "$GH" "$BASTION_PORT"
"$GATEHOUSE_BIN" ca public-key --config "$GH/gatehouse.toml" > "$ETC/gatehouse_user_ca.pub"
if [[ $NOREC == 1 ]]; then
  gh_init "$GH2" "$BASTION2_PORT"
  # Recording off: the recordings "dir" is a regular file, so no recording can
  # be created, and on_failure = "allow" lets the session run unrecorded (with
  # an error logged per session). Everything else is identical.
  : > "$GH2/recordings-disabled"
  grep -q '^dir *=' "$GH2/gatehouse.toml" && grep -q '^on_failure *=' "$GH2/gatehouse.toml" ||
    die "no [recordings] dir/on_failure lines in $GH2/gatehouse.toml"
  sed -i -e 's|^dir *=.*|dir        = "recordings-disabled"   # a regular file: recording off (bench)|' \
    -e 's|^on_failure *=.*|on_failure = "allow"|' "$GH2/gatehouse.toml"
  "$GATEHOUSE_BIN" ca public-key --config "$GH2/gatehouse.toml" >> "$ETC/gatehouse_user_ca.pub"
fi

# ---- OpenSSH target and jump host --------------------------------------------
log "setting up the OpenSSH target ($TARGET_PORT${EXTRA_TARGET_PORTS:+, more on $EXTRA_TARGET_PORTS}) and jump host ($JUMP_PORT)"
EXTRA_USER_CA_PUB=$ETC/gatehouse_user_ca.pub "$O/setup.sh" >&2
. "$BENCH_DIR/bench.env"

# ---- policy ------------------------------------------------------------------
write_policy() { # DIR
  rm -f "$1"/policies/*.toml
  cat > "$1/policies/bench.toml" << EOF
# generated by bench/run.sh
[[user]]
name   = "$BENCH_USER"
keys   = ["$(cut -d' ' -f1,2 "$K/user_ed25519.pub")"]
groups = ["bench"]

$(for name in $(target_names); do printf '
[[target]]
name      = "%s"
address   = "%s"
port      = %s
host_keys = ["%s"]
' "$name" "$BIND_ADDR" "$(target_port "$name")" "$(cut -d' ' -f1,2 "$K/target_host_ed25519.pub")"; done)

[[role]]
name         = "bench"
members      = ["bench"]
targets      = [$(target_names | sed 's/[^ ]\+/"&"/g; s/ /, /g')]
login        = "$BENCH_USER"
approvals    = 0
max_duration = "8h"
shell        = "full"
EOF
  "$GATEHOUSE_BIN" check --config "$1/gatehouse.toml" > "$LOGD/$(basename "$1").check.log" 2>&1 ||
    { cat "$LOGD/$(basename "$1").check.log" >&2; die "gatehouse check failed for $1"; }
}
write_policy "$GH"
[[ $NOREC == 1 ]] && write_policy "$GH2"

# ---- start Gatehouse ---------------------------------------------------------
gh_start() { # NAME DIR PORT
  local name=$1 dir=$2 port=$3 conf=$2/gatehouse.toml pid i
  port_listening "$port" && die "port $port is taken"
  ( ulimit -n "$NOFILE" 2> /dev/null || ulimit -n "$(ulimit -Hn)"
    cd "$dir" && exec "$GATEHOUSE_BIN" serve --config "$conf" ) >> "$LOGD/$name.log" 2>&1 &
  pid=$!
  echo "$pid" > "$RUN/$name.pid"
  echo "$conf" > "$RUN/$name.conf"
  for ((i = 0; i < 150; i++)); do
    port_listening "$port" && break
    kill -0 "$pid" 2> /dev/null || { tail -n 20 "$LOGD/$name.log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  port_listening "$port" || { tail -n 20 "$LOGD/$name.log" >&2; die "$name does not listen on $port"; }
  cg_attach "$name" "$pid"
  log "$name: pid $pid on $BIND_ADDR:$port (open files $(awk '/Max open files/ { print $4 }' "/proc/$pid/limits"))"
}
: > "$LOGD/gatehouse-rec.log"
: > "$LOGD/gatehouse-norec.log"
gh_start gatehouse-rec "$GH" "$BASTION_PORT"
[[ $NOREC == 1 ]] && gh_start gatehouse-norec "$GH2" "$BASTION2_PORT"

# ---- grants --------------------------------------------------------------------
: > "$ETC/known_hosts.bastion" # each instance's host key is learned on first use
fresh_cert
for port in "$BASTION_PORT" $([[ $NOREC == 1 ]] && echo "$BASTION2_PORT"); do
  for name in $(target_names); do
    out=$(ssh -F "$SSH_CFG" -p "$port" "$BENCH_USER@$BIND_ADDR" request "$name" --role bench --for 8h --reason benchmark run 2>&1 < /dev/null) ||
      die "grant request for $name on port $port failed: $out"
    log "grant on $port: $(tr '\n' ' ' <<< "$out")"
  done
done
# The load client pins each instance's host key.
ssh-keygen -y -f "$GH/data/keys/host_ed25519" > "$ETC/gatehouse-rec.host.pub" || die "cannot read $GH's host key"
export BASTION_HOST_KEY=$ETC/gatehouse-rec.host.pub
if [[ $NOREC == 1 ]]; then
  ssh-keygen -y -f "$GH2/data/keys/host_ed25519" > "$ETC/gatehouse-norec.host.pub" || die "cannot read $GH2's host key"
  export BASTION2_HOST_KEY=$ETC/gatehouse-norec.host.pub
fi

# ---- measure -----------------------------------------------------------------
R=$BENCH_DIR/results/$(date +%Y%m%dT%H%M%S)
[[ $QUICK == 1 ]] && R+=-quick
mkdir -p "$R"
log "results: $R"
export RESULTS_DIR=$R
export BASTION_PORT BASTION_NAME=gatehouse BASTION_PID BASTION_LOG=$LOGD/gatehouse-rec.log BASTION_REC_DIR=$GH/recordings
BASTION_PID=$(cat "$RUN/gatehouse-rec.pid")
[[ -f $RUN/gatehouse-rec.cgroup ]] && export BASTION_CGROUP=$(cat "$RUN/gatehouse-rec.cgroup")
if [[ $NOREC == 1 ]]; then
  export BASTION2_PORT BASTION2_NAME=gatehouse-norec BASTION2_LOG=$LOGD/gatehouse-norec.log
  export BASTION2_PID; BASTION2_PID=$(cat "$RUN/gatehouse-norec.pid")
  [[ -f $RUN/gatehouse-norec.cgroup ]] && export BASTION2_CGROUP=$(cat "$RUN/gatehouse-norec.cgroup")
fi
export CONC_ENDPOINTS=${CONC_ENDPOINTS:-jump bastion}
"$O/measure.sh" > "$R/measure.md"

# ---- the decision with 100,000 grants ----------------------------------------
DEC_PURE=- DEC_STORE=-
if [[ $DECIDE == 1 ]]; then
  log "cargo bench --bench decide ($DECIDE_EXE --bench)"
  dargs=()
  [[ $QUICK == 1 ]] && dargs=(--warm-up-time 1 --measurement-time 2)
  # criterion keeps its files under the results dir (no comparison with
  # whatever baseline target/criterion holds)
  if (cd "$REPO" && CRITERION_HOME=$R/criterion "$DECIDE_EXE" --bench "${dargs[@]}") > "$R/decide.log" 2>&1; then
    # criterion's estimates.json: the median's point estimate, in ns
    median_us() {
      local f
      f=$(grep -l -F "\"$1\"" "$R"/criterion/*/new/benchmark.json 2> /dev/null | head -n1)
      [[ -n $f ]] || { echo -; return; }
      perl -ne 'if (/"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+)/) { printf "%.2f\n", $1 / 1000 }' "$(dirname "$f")/estimates.json"
    }
    DEC_PURE=$(median_us "decide (pure, one user's live grants)")
    DEC_STORE=$(median_us "store read + decide (100k grants in SQLite)")
    [[ -n $DEC_PURE ]] || DEC_PURE=-
    [[ -n $DEC_STORE ]] || DEC_STORE=-
  else
    log "cargo bench --bench decide failed (see $R/decide.log)"
    DEC_PURE="bench failed" DEC_STORE="bench failed"
  fi
elif [[ $DECIDE == failed ]]; then
  DEC_PURE="does not build" DEC_STORE="does not build"
fi

# ---- search over a generated corpus (optional) -------------------------------
# Writes CORPUS_GIB of recordings with Gatehouse's recorder, indexes them and times queries;
# the corpus is deleted afterwards. Needs about three times the corpus free on disk.
if [[ $SEARCH == 1 ]]; then
  log "cargo bench --bench search (CORPUS_GIB=${CORPUS_GIB:-10})"
  if (cd "$REPO" && CORPUS_GIB=${CORPUS_GIB:-10} CORPUS_DIR=${CORPUS_DIR:-$BENCH_DIR} cargo bench --bench search) > "$R/search.log" 2>&1; then
    grep -E '^(corpus|generated|indexed|query)' "$R/search.log" >&2 || true
  else
    log "the search bench failed (see $R/search.log)"
  fi
fi

# ---- the table -----------------------------------------------------------------
res() { printf '%s\t%s\n' "$1" "$2" >> "$R/results.tsv"; }
res decide.pure_us "$DEC_PURE"
res decide.store_us "$DEC_STORE"
res meta.quick "$QUICK"
res meta.norec "$NOREC"
res meta.gatehouse "$("$GATEHOUSE_BIN" --version 2> /dev/null | awk '{ print $2 }') ($(cd "$REPO" && git rev-parse --short HEAD 2> /dev/null || echo '?')$(cd "$REPO" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2> /dev/null || echo ' + uncommitted changes'))"
res meta.ssh "$(ssh -V 2>&1 | cut -d, -f1)"
res meta.total_s "$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"
"$BENCH_ROOT/table.sh" "$R" > "$R/summary.md"
cat "$R/summary.md"
log "summary: $R/summary.md (regenerate with: bench/table.sh $R)"
