#!/usr/bin/env bash
# measure.sh — measure the same work over each endpoint in one run:
#   direct    ssh -F $BENCH_DIR/etc/ssh_config target CMD
#   jump      ssh -F $BENCH_DIR/etc/ssh_config -J jump target CMD
#   bastion   ssh -F $BENCH_DIR/etc/ssh_config -p $BASTION_PORT USER@127.0.0.1 TARGET CMD
#   bastion2  the same on $BASTION2_PORT (a second instance, e.g. recording off)
# (the bastions only when their port is set; they take the target name as the
# first word of the command). Endpoints alternate within each repetition (the
# order rotates from one repetition to the next), so slow drifts of the
# machine's load hit every endpoint alike.
#
# Sections: auth, latency (`ssh ... true`), throughput (text and binary
# output), concurrency (idle interactive sessions held open), close (N large
# transfers in a row, each must end with the client's exit, promptly).
# Markdown tables on stdout (also summary.md in the results dir); key/value
# figures in results.tsv for bench/run.sh; progress on stderr.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"
LASTBYTE=$HERE/../tools/lastbyte.pl

MiB=1048576
if [[ ${QUICK:-0} == 1 ]]; then # smoke test: minutes -> seconds
  : "${RUNS_LAT:=5}" "${WARMUP_LAT:=1}" "${RUNS_TPUT:=2}" "${BYTES:=$((64 * MiB))}"
  : "${CONC_N_JUMP:=20}" "${CONC_N_BASTION:=50}" "${CLOSE_RUNS:=5}"
fi
RUNS_LAT=${RUNS_LAT:-20}           # session setup: measured runs per endpoint
WARMUP_LAT=${WARMUP_LAT:-3}        # ... plus warm-up rounds (not counted)
RUNS_TPUT=${RUNS_TPUT:-5}          # throughput: measured runs per endpoint and workload
BYTES=${BYTES:-1073741824}         # bytes streamed per throughput run (1 GiB)
CHECK_BYTES=${CHECK_BYTES:-$((BYTES < 64 * MiB ? BYTES : 64 * MiB))} # byte-exact check run before timing
WORKLOADS=${WORKLOADS:-text binary}
TEXT_LINE=${TEXT_LINE:-the quick brown fox 0123456789}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}    # bound on any single ssh command (s)
CONC_N=${CONC_N:-100}              # default number of concurrent sessions per endpoint
CONC_N_DIRECT=${CONC_N_DIRECT:-$CONC_N}
CONC_N_JUMP=${CONC_N_JUMP:-$CONC_N}
CONC_N_BASTION=${CONC_N_BASTION:-1000}
CONC_N_BASTION2=${CONC_N_BASTION2:-$CONC_N}
CONC_ENDPOINTS=${CONC_ENDPOINTS:-jump bastion}
CONC_TIMEOUT=${CONC_TIMEOUT:-240}  # stop waiting for all sessions to come up after this (s)
CONC_HOLD_MAX=${CONC_HOLD_MAX:-$((CONC_TIMEOUT + 120))} # no idle session is held longer (s)
CONC_CLOSE_WAIT=${CONC_CLOSE_WAIT:-120} # wait at most this for all to close after release (s)
CONC_SETTLE=${CONC_SETTLE:-5}      # seconds between the last close and the "after" memory sample
CONC_STALL=${CONC_STALL:-30}       # ... or after this many seconds without a session coming up / ending
CONC_CONNECT_TIMEOUT=${CONC_CONNECT_TIMEOUT:-120} # client ConnectTimeout (also the banner wait) under load
CONC_CLIENT=${CONC_CLIENT:-openssh} # bastion sessions from: openssh (one ssh -tt each) or russh (SESSIONS_EXE, one process)
SESSIONS_EXE=${SESSIONS_EXE:-}     # the built benches/sessions.rs (bench/run.sh builds it)
CONC_INFLIGHT=${CONC_INFLIGHT:-64} # russh client: sessions starting at once
CONC_RATE=${CONC_RATE:-0}          # russh client: session starts per second at most (0: no limit)
CONC_MIN_RATE=${CONC_MIN_RATE:-10} # russh client: the ramp may take N / this many s (if more than CONC_TIMEOUT)
CLOSE_ENDPOINT=${CLOSE_ENDPOINT:-bastion}
CLOSE_RUNS=${CLOSE_RUNS:-20}
CLOSE_BYTES=${CLOSE_BYTES:-$BYTES}
CLOSE_WORKLOADS=${CLOSE_WORKLOADS:-text binary} # cycled over the runs
CLOSE_LIMIT_S=${CLOSE_LIMIT_S:-1}  # "promptly": last byte -> client exit at most this
CLOSE_TIMEOUT=${CLOSE_TIMEOUT:-$RUN_TIMEOUT}
LAT_KEX=${LAT_KEX:-default curve25519-sha256} # session setup: client defaults, then one KEX on every hop
SECTIONS=${SECTIONS:-auth latency throughput concurrency close}
BASTION_USER=${BASTION_USER:-$BENCH_USER}
BASTION_TARGET=${BASTION_TARGET:-target}
BASTION_PORT=${BASTION_PORT:-}
BASTION_NAME=${BASTION_NAME:-bastion}
BASTION_PID=${BASTION_PID:-}       # default: the listener on BASTION_PORT
BASTION_CGROUP=${BASTION_CGROUP:-} # cgroup dir the bastion runs in: exact CPU accounting
BASTION_LOG=${BASTION_LOG:-}       # its log file: errors/warnings are counted per section
BASTION_REC_DIR=${BASTION_REC_DIR:-} # its recordings dir: *.cast removed after each run (disk space)
BASTION2_PORT=${BASTION2_PORT:-}
BASTION2_NAME=${BASTION2_NAME:-bastion2}
BASTION2_PID=${BASTION2_PID:-}
BASTION2_CGROUP=${BASTION2_CGROUP:-}
BASTION2_LOG=${BASTION2_LOG:-}
BASTION2_REC_DIR=${BASTION2_REC_DIR:-}

# ---- preconditions -----------------------------------------------------------
[[ -f $BENCH_DIR/bench.env ]] || die "no bench at BENCH_DIR=$BENCH_DIR: run setup.sh first"
TARGET_PID=$(pid_is_ours "$RUN/target.pid" "$ETC/sshd_target.conf") || die "target sshd not running: run setup.sh"
TARGET_PIDS=()
for name in $(target_names); do
  pid=$(pid_is_ours "$RUN/$name.pid" "$ETC/sshd_$name.conf") || die "$name sshd not running: run setup.sh"
  TARGET_PIDS+=("$pid")
done
JUMP_PID=$(pid_is_ours "$RUN/jump.pid" "$ETC/sshd_jump.conf") || die "jump sshd not running: run setup.sh"
[[ -x $LASTBYTE ]] || die "$LASTBYTE missing"
ENDPOINTS=(direct jump)
for b in BASTION BASTION2; do
  pv=${b}_PORT pidv=${b}_PID
  [[ -n ${!pv} ]] || continue
  [[ ${!pv} =~ ^[0-9]+$ ]] || die "$pv must be a port number"
  port_listening "${!pv}" || die "nothing listens on port ${!pv} ($pv)"
  [[ -n ${!pidv} ]] || printf -v "$pidv" '%s' "$(port_pid "${!pv}")"
  ep=${b,,}
  ENDPOINTS+=("$ep")
done
[[ -n $BASTION_PORT || -z $BASTION2_PORT ]] || die "BASTION2_PORT needs BASTION_PORT"

R=${RESULTS_DIR:-$BENCH_DIR/results/$(date +%Y%m%dT%H%M%S)}
mkdir -p "$R"
SUMMARY=$R/summary.md
RESULTS=$R/results.tsv
: > "$SUMMARY"
: > "$RESULTS"
out() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
res() { printf '%s\t%s\n' "$1" "$2" >> "$RESULTS"; } # res KEY VALUE
has_section() { [[ " $SECTIONS " == *" $1 "* ]]; }

# ---- helpers -----------------------------------------------------------------
q() { if [[ $1 =~ ^[A-Za-z0-9_./:@%+=,-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi; }
join_q() { local w s=""; for w in "$@"; do s+="${s:+ }$(q "$w")"; done; printf '%s' "$s"; }
shown() { local s=$1; printf '%s' "${s//"$BENCH_DIR"/\$BENCH_DIR}"; }

epname() {
  case $1 in
    bastion) printf '%s' "$BASTION_NAME" ;;
    bastion2) printf '%s' "$BASTION2_NAME" ;;
    *) printf '%s' "$1" ;;
  esac
}
ep_var() { local v=${1^^}_$2; printf '%s' "${!v:-}"; } # ep_var bastion PORT -> $BASTION_PORT

# ep_argv ENDPOINT CFG [extra ssh options...] -> ARGV = the ssh prefix; the
# remote command is appended as one more word.
ep_argv() {
  local ep=$1 cfg=$2; shift 2
  case $ep in
    direct) ARGV=("$SSH_BIN" "$@" -F "$cfg" target) ;;
    jump) ARGV=("$SSH_BIN" "$@" -F "$cfg" -J jump target) ;;
    bastion | bastion2)
      ARGV=("$SSH_BIN" "$@" -F "$cfg" -p "$(ep_var "$ep" PORT)" "$BASTION_USER@$BIND_ADDR" "$BASTION_TARGET") ;;
    *) die "unknown endpoint $ep" ;;
  esac
}

# variant_cfg OPTION VALUE -> a client config that sets OPTION first and then
# includes the shared one (it reaches every hop, -J included).
variant_cfg() {
  local opt=$1 val=$2 cfg
  if [[ $val == default ]]; then printf '%s' "$SSH_CFG"; return; fi
  cfg=$ETC/ssh_config.$opt-$val
  printf '# generated by measure.sh\n%s %s\nInclude %s\n' "$opt" "$val" "$SSH_CFG" > "$cfg.tmp"
  chmod 644 "$cfg.tmp"
  mv -f "$cfg.tmp" "$cfg"
  printf '%s' "$cfg"
}

proxy_pid() {
  case $1 in
    jump) printf '%s' "$JUMP_PID" ;;
    direct) printf '%s' "$TARGET_PID" ;;
    *) ep_var "$1" PID ;;
  esac
}
# proxy_cpu_ns ENDPOINT -> cumulative CPU ns of the endpoint's proxy (jump sshd
# tree or bastion); empty for direct.
proxy_cpu_ns() {
  local cg pid
  case $1 in
    direct) ;;
    jump) if [[ -f $RUN/jump.cgroup ]]; then cg_cpu_ns "$(< "$RUN/jump.cgroup")"; else proc_cpu_ns "$JUMP_PID"; fi ;;
    *)
      cg=$(ep_var "$1" CGROUP) pid=$(ep_var "$1" PID)
      if [[ -n $cg ]]; then cg_cpu_ns "$cg"; elif [[ -n $pid ]]; then proc_cpu_ns "$pid"; fi ;;
  esac
}
# target_cpu_ns -> cumulative CPU ns of every target sshd (idle ones add nothing)
target_cpu_ns() {
  local name t=0 i=0 c
  for name in $(target_names); do
    if [[ -f $RUN/$name.cgroup ]]; then c=$(cg_cpu_ns "$(< "$RUN/$name.cgroup")"); else c=$(proc_cpu_ns "${TARGET_PIDS[i]}"); fi
    t=$((t + c)) i=$((i + 1))
  done
  echo "$t"
}
# client CPU: cutime+cstime of the main shell, i.e. its reaped children (the ssh
# client and, with -J, the ProxyJump ssh that ssh reaps), in ns. Read last
# before and first after the command, so helper subshells stay out of it.
client_cpu_ns() {
  local s; s=$(< "/proc/$$/stat"); s=${s##*) }
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($14 + $15) / t * 1e9 }' <<< "$s"
}
cpu_method() {
  case $1 in
    direct) echo "-" ;;
    jump) [[ -f $RUN/jump.cgroup ]] && echo "cgroup" || echo "/proc (listener + reaped children)" ;;
    *) if [[ -n $(ep_var "$1" CGROUP) ]]; then echo "cgroup"
       elif [[ -n $(ep_var "$1" PID) ]]; then echo "/proc of pid $(ep_var "$1" PID)"
       else echo "unknown"; fi ;;
  esac
}

# stats FILE -> "median mean min max n" of the numbers in FILE
stats() {
  sort -g "$1" | awk '{ a[NR] = $1; s += $1 }
    END { if (!NR) { print "nan nan nan nan 0"; exit }
          m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          printf "%.6f %.6f %.6f %.6f %d\n", m, s / NR, a[1], a[NR], NR }'
}
fmt() { awk -v x="$2" "BEGIN { if (x == \"\" || x == \"nan\" || x == \"-\") print \"-\"; else printf \"$1\", x }"; }

# log_mark ENDPOINT -> current size of the bastion's log (to count lines later)
log_mark() { local f; f=$(ep_var "$1" LOG); if [[ -n $f && -f $f ]]; then stat -c %s "$f"; else echo 0; fi; }
# log_since ENDPOINT OFFSET -> the log's lines written after OFFSET
log_since() { local f; f=$(ep_var "$1" LOG); [[ -n $f && -f $f ]] && tail -c +"$(($2 + 1))" "$f" || true; }
# ERROR/WARN lines, except the one a recording-off instance logs by design per session
log_problems() { sed 's/\x1b\[[0-9;]*m//g' | grep -E '^[^ ]+ +(ERROR|WARN) |"level":"(ERROR|WARN)"' | grep -v 'the session runs UNRECORDED' || true; }

# rec_clean ENDPOINT -> wait (bounded) until the bastion holds no *.cast file
# open, then delete the recordings (a 1 GiB binary transfer records ~6 GiB);
# prints how long the bastion kept a recording open after the client exited.
rec_clean() {
  local dir pid t0 held=0 quiet=0
  dir=$(ep_var "$1" REC_DIR) pid=$(ep_var "$1" PID)
  [[ -n $dir && -d $dir ]] || { echo -; return 0; }
  t0=$EPOCHREALTIME
  if [[ -n $pid ]]; then
    for ((i = 0; i < 600; i++)); do
      if ls -l "/proc/$pid/fd" 2> /dev/null | grep -q '\.cast'; then held=1 quiet=0; else quiet=$((quiet + 1)); fi
      ((quiet >= 2)) && break
      sleep 0.1
    done
  fi
  find "$dir" -type f -name '*.cast' -delete 2> /dev/null || true
  if ((held)); then awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a - 0.2 }'; else echo 0; fi
}

# timed ENDPOINT CMD -> runs CMD (a quoted command line) once with stdin and
# stdout on /dev/null; sets T (s), RC, PCPU/TCPU/CCPU (proxy/target/client ns)
ERRF=$R/stderr.last
timed() {
  local ep=$1 cmd=$2 p0 p1 t0c t1c c0 c1 a b
  p0=$(proxy_cpu_ns "$ep") t0c=$(target_cpu_ns)
  c0=$(client_cpu_ns)
  a=$EPOCHREALTIME
  RC=0
  eval "timeout -k 5 $RUN_TIMEOUT $cmd" < /dev/null > /dev/null 2> "$ERRF" || RC=$?
  b=$EPOCHREALTIME
  c1=$(client_cpu_ns)
  p1=$(proxy_cpu_ns "$ep") t1c=$(target_cpu_ns)
  T=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.6f", b - a }')
  if [[ -n $p0 && -n $p1 ]]; then PCPU=$((p1 - p0)); else PCPU=; fi
  TCPU=$((t1c - t0c)) CCPU=$((c1 - c0))
}

# alternate TAG RUNS WARMUP EP CMD [EP CMD ...] -> $R/TAG.runs.tsv rows:
#   rep endpoint seconds rc proxy_cpu_ns target_cpu_ns client_cpu_ns
# Repetition r runs every endpoint once, starting at endpoint (r mod n).
# Warm-up repetitions are run the same way and not recorded.
declare -A FAILS=() FIRSTERR=()
alternate() {
  local tag=$1 runs=$2 warm=$3 rep k j n ep cmd rec; shift 3
  local eps=() cmds=()
  while (($#)); do eps+=("$1"); cmds+=("$2"); shift 2; done
  n=${#eps[@]}
  : > "$R/$tag.runs.tsv"
  for ((rep = 1 - warm; rep <= runs; rep++)); do
    for ((k = 0; k < n; k++)); do
      j=$(((k + rep + warm) % n)) ep=${eps[j]} cmd=${cmds[j]}
      timed "$ep" "$cmd"
      if ((RC != 0)); then
        FAILS[$tag.$ep]=$((${FAILS[$tag.$ep]:-0} + 1))
        [[ -n ${FIRSTERR[$tag.$ep]:-} ]] || FIRSTERR[$tag.$ep]="rc=$RC: $(head -c 400 "$ERRF" | tr '\n' ' ')"
        log "$tag $(epname "$ep") rep $rep: exit $RC: $(head -c 300 "$ERRF" | tr '\n' ' ')"
      fi
      rec=$(rec_clean "$ep")
      ((rep >= 1)) && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$ep" "$T" "$RC" "$PCPU" "$TCPU" "$CCPU" "$rec" >> "$R/$tag.runs.tsv"
    done
  done
}
# ep_stats TAG EP -> "median mean min max n  pcpu_ns_mean tcpu_ns_mean ccpu_ns_mean rec_hold_max" over rc=0 runs
ep_stats() {
  local f=$R/$1.$2.times
  awk -F'\t' -v e="$2" '$2 == e && $4 == 0 { print $3 }' "$R/$1.runs.tsv" > "$f"
  printf '%s %s\n' "$(stats "$f")" "$(awk -F'\t' -v e="$2" '$2 == e && $4 == 0 {
      n++; if ($5 != "") { p += $5; pn++ } t += $6; c += $7; if ($8 != "-" && $8 + 0 > h) h = $8 + 0 }
    END { if (!n) { print "- - - -"; exit }
          printf "%s %.0f %.0f %.3f\n", pn ? sprintf("%.0f", p / pn) : "-", t / n, c / n, h }' "$R/$1.runs.tsv")"
}

# ---- header ------------------------------------------------------------------
ssh_ver=$("$SSH_BIN" -V 2>&1)
sshd_ver=$(dpkg-query -W -f='openssh-server ${Version}' openssh-server 2> /dev/null || "$SSHD_BIN" -V 2>&1 | tail -n1 || true)
out "# Gatehouse bench: measurements — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
out ""
out "- host: $(uname -sr), $(nproc) CPU ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, loadavg at start $(cut -d' ' -f1-3 /proc/loadavg)"
out "- client: $ssh_ver; server: $sshd_ver ($SSHD_BIN)"
out "- timing: bash loop on EPOCHREALTIME, endpoints alternating within each repetition (order rotated per repetition)"
out "- target sshd $BIND_ADDR:$TARGET_PORT (pid $TARGET_PID)${EXTRA_TARGET_PORTS:+ and $(wc -w <<< "$EXTRA_TARGET_PORTS") more like it on $EXTRA_TARGET_PORTS (the concurrency test spreads its sessions over all)}, jump sshd $BIND_ADDR:$JUMP_PORT (pid $JUMP_PID)"
for ep in bastion bastion2; do
  [[ -n $(ep_var "$ep" PORT) ]] || continue
  out "- $(epname "$ep"): $BIND_ADDR:$(ep_var "$ep" PORT) (pid $(ep_var "$ep" PID)), CPU accounting: $(cpu_method "$ep")"
done
out "- jump sshd CPU accounting: $(cpu_method jump); client CPU: the ssh processes this script reaps (/proc/self/stat cutime+cstime)"
out ""
res host.nproc "$(nproc)"
res runs.lat "$RUNS_LAT"
res runs.tput "$RUNS_TPUT"
res tput.bytes "$BYTES"
res conc.settle_s "$CONC_SETTLE"
res host.loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"
log "results dir: $R"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "note: 1-min load average is $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs (other work on the machine): expect noise"
fi

# ---- auth sanity -------------------------------------------------------------
if has_section auth; then
  log "auth checks"
  out "## Authentication checks (target trusts the bench user CA and the bastions' CAs)"
  out ""
  out "| check | expected | got |"
  out "|---|---|---|"
  checks=$(auth_checks) || { printf '%s\n' "$checks" >&2; die "auth checks failed"; }
  while IFS=$'\t' read -r a b c; do out "| $a | $b | $c |"; done <<< "$checks"
  for ep in "${ENDPOINTS[@]}"; do
    [[ $ep == bastion* ]] || continue
    ep_argv "$ep" "$SSH_CFG"
    got=$("${ARGV[@]}" 'echo ok' < /dev/null 2> "$R/auth-$ep.err") || true
    if [[ $got == ok ]]; then out "| $(epname "$ep") exec | ok | ok |"
    else out "| $(epname "$ep") exec | ok | FAILED: $(head -c 300 "$R/auth-$ep.err" | tr '\n' ' ') |"; die "$(epname "$ep") does not run a command on the target"; fi
  done
  out ""
fi

# ---- session setup latency ---------------------------------------------------
# negotiated CFG EP -> "kex cipher" of each hop the client sees ("+" between
# the jump hop and the target hop); a bastion's own upstream hop is not visible
negotiated() {
  ep_argv "$2" "$1" -v
  "${ARGV[@]}" true 2>&1 < /dev/null | awk '
    /kex: algorithm:/ { k[++nk] = $NF }
    /kex: server->client cipher:/ { for (i = 1; i <= NF; i++) if ($i == "cipher:") c[++nc] = $(i + 1) }
    END { for (i = 1; i <= nk; i++) { sub(/@openssh.com$/, "", k[i]); sub(/@openssh.com$/, "", c[i]); printf "%s%s %s", (i > 1 ? " + " : ""), k[i], c[i] } }'
}
if has_section latency; then
  out "## Session setup: \`ssh ... true\`, median of $RUNS_LAT alternating repetitions (+$WARMUP_LAT warm-up)"
  out ""
  out "*kex (config)* \`default\` = the client's defaults; another value is set with \`KexAlgorithms\` for every hop the client makes (a bastion's own hop to the target keeps its own choice). *negotiated* = key exchange and cipher per hop the client sees (jump: outer + inner)."
  out ""
  out "| kex (config) | endpoint | negotiated | median ms | mean ms | min ms | max ms | failures | proxy CPU ms/session | target sshd CPU ms/session | client CPU ms/session | command |"
  out "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for kex in $LAT_KEX; do
    cfg=$(variant_cfg KexAlgorithms "$kex")
    if [[ $kex == default ]]; then tag=latency pfx=latency; else tag=latency-${kex%%@*} pfx=latency-${kex%%@*}; fi
    log "latency ($kex): ${ENDPOINTS[*]} alternating, $RUNS_LAT repetitions (+$WARMUP_LAT warm-up)"
    fresh_cert
    margs=()
    declare -A lat_cmd=() lat_neg=()
    for ep in "${ENDPOINTS[@]}"; do
      lat_neg[$ep]=$(negotiated "$cfg" "$ep")
      ep_argv "$ep" "$cfg"
      lat_cmd[$ep]=$(join_q "${ARGV[@]}" true)
      margs+=("$ep" "${lat_cmd[$ep]}")
    done
    alternate "$tag" "$RUNS_LAT" "$WARMUP_LAT" "${margs[@]}"
    for ep in "${ENDPOINTS[@]}"; do
      read -r med mean mn mx n pc tc cc _ < <(ep_stats "$tag" "$ep")
      res "$pfx.$ep.median_ms" "$(fmt %.1f "$(awk -v m="$med" 'BEGIN { print m * 1000 }')")"
      res "$pfx.$ep.fails" "${FAILS[$tag.$ep]:-0}"
      res "$pfx.$ep.negotiated" "${lat_neg[$ep]}"
      res "$pfx.$ep.proxy_cpu_ms" "$(awk -v p="$pc" 'BEGIN { if (p == "-") print "-"; else printf "%.1f", p / 1e6 }')"
      res "$pfx.$ep.client_cpu_ms" "$(awk -v p="$cc" 'BEGIN { if (p == "-") print "-"; else printf "%.1f", p / 1e6 }')"
      out "$(awk -v k="$kex" -v e="$(epname "$ep")" -v ng="${lat_neg[$ep]}" -v a="$med" -v b="$mean" -v c="$mn" -v d="$mx" -v f="${FAILS[$tag.$ep]:-0}" \
        -v pc="$pc" -v tc="$tc" -v cc="$cc" -v cmd="$(shown "${lat_cmd[$ep]}")" 'BEGIN {
          p = (pc == "-") ? "-" : sprintf("%.1f", pc / 1e6)
          if (a == "nan") { printf "| %s | %s | %s | - | - | - | - | %d | - | - | - | `%s` |", k, e, ng, f, cmd; exit }
          printf "| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %d | %s | %.1f | %.1f | `%s` |", k, e, ng, a * 1000, b * 1000, c * 1000, d * 1000, f, p, tc / 1e6, cc / 1e6, cmd }')"
    done
  done
  out ""
fi

# ---- throughput --------------------------------------------------------------
workload_cmd() { # WORKLOAD BYTES -> remote command
  case $1 in
    text) printf "yes '%s' | head -c %s" "$TEXT_LINE" "$2" ;;
    binary) printf 'head -c %s /dev/zero' "$2" ;;
    *) die "unknown workload $1" ;;
  esac
}
if has_section throughput; then
  out "## Throughput: $BYTES bytes of output streamed to the client (stdout on /dev/null), median of $RUNS_TPUT alternating repetitions"
  out ""
  out "Workloads: **text** = \`$(workload_cmd text "$BYTES")\`, **binary** = \`$(workload_cmd binary "$BYTES")\`. Times include session setup. CPU columns are seconds per GiB: the proxy (jump sshd tree / bastion), the target sshd tree, and the ssh client(s). *rec. held s* = longest time the bastion kept a recording file open after the client had exited."
  out ""
  out "| workload | endpoint | negotiated | median s | MB/s | MiB/s | min-max s | failures | proxy CPU s/GiB | target CPU s/GiB | client CPU s/GiB | rec. held s | command |"
  out "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
  declare -A tp_neg=()
  for wl in $WORKLOADS; do
    fresh_cert
    margs=()
    declare -A tp_cmd=()
    for ep in "${ENDPOINTS[@]}"; do
      [[ -n ${tp_neg[$ep]:-} ]] || tp_neg[$ep]=$(negotiated "$SSH_CFG" "$ep")
      ep_argv "$ep" "$SSH_CFG"
      # one checked transfer first: byte-exact count, warms caches
      got=$(timeout -k 5 "$RUN_TIMEOUT" "${ARGV[@]}" "$(workload_cmd "$wl" "$CHECK_BYTES")" < /dev/null 2> "$R/check-$wl-$ep.err" | wc -c) || true
      rec_clean "$ep" > /dev/null
      if [[ $got != "$CHECK_BYTES" ]]; then
        log "$wl/$(epname "$ep"): check transfer received $got bytes, expected $CHECK_BYTES: $(head -c 300 "$R/check-$wl-$ep.err")"
        res "tput.$wl.$ep.check" "FAIL ($got of $CHECK_BYTES bytes)"
      else
        res "tput.$wl.$ep.check" "ok"
      fi
      tp_cmd[$ep]=$(join_q "${ARGV[@]}" "$(workload_cmd "$wl" "$BYTES")")
      margs+=("$ep" "${tp_cmd[$ep]}")
    done
    log "throughput $wl: ${ENDPOINTS[*]} alternating x $RUNS_TPUT"
    alternate "tput-$wl" "$RUNS_TPUT" 0 "${margs[@]}"
    for ep in "${ENDPOINTS[@]}"; do
      read -r med _ mn mx n pc tc cc hold < <(ep_stats "tput-$wl" "$ep")
      res "tput.$wl.$ep.mbps" "$(awk -v m="$med" -v b="$BYTES" 'BEGIN { if (m == "nan" || m <= 0) print "-"; else printf "%.0f", b / 1e6 / m }')"
      res "tput.$wl.$ep.median_s" "$med"
      res "tput.$wl.$ep.fails" "${FAILS[tput-$wl.$ep]:-0}"
      res "tput.$wl.$ep.proxy_cpu_s_per_gib" "$(awk -v p="$pc" -v b="$BYTES" 'BEGIN { if (p == "-") print "-"; else printf "%.2f", p / 1e9 / (b / 1073741824) }')"
      res "tput.$wl.$ep.target_cpu_s_per_gib" "$(awk -v p="$tc" -v b="$BYTES" 'BEGIN { if (p == "-") print "-"; else printf "%.2f", p / 1e9 / (b / 1073741824) }')"
      res "tput.$wl.$ep.client_cpu_s_per_gib" "$(awk -v p="$cc" -v b="$BYTES" 'BEGIN { if (p == "-") print "-"; else printf "%.2f", p / 1e9 / (b / 1073741824) }')"
      res "tput.$wl.$ep.rec_held_s" "$hold"
      out "$(awk -v w="$wl" -v e="$(epname "$ep")" -v ng="${tp_neg[$ep]}" -v m="$med" -v lo="$mn" -v hi="$mx" -v b="$BYTES" -v f="${FAILS[tput-$wl.$ep]:-0}" \
        -v pc="$pc" -v tc="$tc" -v cc="$cc" -v h="$hold" -v cmd="$(shown "${tp_cmd[$ep]}")" 'BEGIN {
          g = b / 1073741824
          p = (pc == "-") ? "-" : sprintf("%.2f", pc / 1e9 / g)
          if (m == "nan") { printf "| %s | %s | %s | - | - | - | - | %d | - | - | - | - | `%s` |", w, e, ng, f, cmd; exit }
          printf "| %s | %s | %s | %.2f | %.0f | %.0f | %.2f-%.2f | %d | %s | %.2f | %.2f | %s | `%s` |", w, e, ng, m, b / 1e6 / m, b / 1048576 / m, lo, hi, f, p, tc / 1e9 / g, cc / 1e9 / g, h, cmd }')"
    done
  done
  out ""
fi

# ---- concurrency -------------------------------------------------------------
# idle interactive sessions held at once: concurrency.sh (sourced; uses the helpers above)
# shellcheck source=concurrency.sh
. "$HERE/concurrency.sh"

# ---- close check -------------------------------------------------------------
# CLOSE_RUNS large recorded transfers in a row through one endpoint; each must
# deliver every byte and end with the client's exit (status 0) within
# CLOSE_LIMIT_S of the last byte. Each is bounded by CLOSE_TIMEOUT.
if has_section close && [[ " ${ENDPOINTS[*]} " == *" $CLOSE_ENDPOINT "* ]]; then
  ep=$CLOSE_ENDPOINT
  d=$R/close-$ep
  mkdir -p "$d"
  fresh_cert
  ep_argv "$ep" "$SSH_CFG"
  wls=($CLOSE_WORKLOADS)
  log "close check: $CLOSE_RUNS x $CLOSE_BYTES bytes through $(epname "$ep") (${wls[*]} alternating)"
  lmark=$(log_mark "$ep")
  : > "$d/runs.tsv"
  pass=0 maxgap=0
  for ((i = 1; i <= CLOSE_RUNS; i++)); do
    wl=${wls[$(((i - 1) % ${#wls[@]}))]}
    a=$EPOCHREALTIME
    {
      timeout -k 5 "$CLOSE_TIMEOUT" "${ARGV[@]}" "$(workload_cmd "$wl" "$CLOSE_BYTES")" < /dev/null 2> "$d/err.$i"
      echo "$? $EPOCHREALTIME" > "$d/exit.$i"
    } | "$LASTBYTE" > "$d/read.$i"
    rc=255 ets=$EPOCHREALTIME nb=0 last=0
    read -r rc ets < "$d/exit.$i" || true
    read -r nb first last eof < "$d/read.$i" || true
    gap=$(awk -v l="$last" -v e="$ets" -v a="$a" 'BEGIN { if (l == 0) l = a; printf "%.3f", e - l }')
    total=$(awk -v a="$a" -v e="$ets" 'BEGIN { printf "%.2f", e - a }')
    held=$(rec_clean "$ep")
    verdict=pass
    if ((rc != 0)); then verdict="fail: exit $rc"; fi
    if [[ $nb != "$CLOSE_BYTES" ]]; then verdict="fail: $nb of $CLOSE_BYTES bytes"; fi
    if awk -v g="$gap" -v l="$CLOSE_LIMIT_S" 'BEGIN { exit !(g > l) }'; then verdict="fail: ${gap}s from last byte to exit"; fi
    [[ $verdict == pass ]] && pass=$((pass + 1))
    maxgap=$(awk -v a="$maxgap" -v b="$gap" 'BEGIN { print (b > a) ? b : a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$wl" "$rc" "$nb" "$total" "$gap" "$held" "$verdict" >> "$d/runs.tsv"
    log "close $i/$CLOSE_RUNS ($wl): ${total}s, last byte -> exit ${gap}s, recording held ${held}s after exit: $verdict"
  done
  log_since "$ep" "$lmark" | log_problems > "$d/proxy_problems.log"
  res close.runs "$CLOSE_RUNS"
  res close.pass "$pass"
  res close.max_gap_s "$maxgap"
  res close.bytes "$CLOSE_BYTES"
  res close.verdict "$( ((pass == CLOSE_RUNS)) && echo pass || echo fail)"
  res close.max_rec_held_s "$(cut -f7 "$d/runs.tsv" | sort -g | tail -n1)"
  out "## Close check: $CLOSE_RUNS recorded transfers of $CLOSE_BYTES bytes in a row through $(epname "$ep") (${wls[*]} alternating)"
  out ""
  out "Each must deliver every byte and exit with status 0 within $CLOSE_LIMIT_S s of its last byte (bounded by a ${CLOSE_TIMEOUT}s timeout). **$pass/$CLOSE_RUNS passed**, max last byte → exit: ${maxgap} s. *held s*: how long the bastion still had the recording open after the client exited."
  out ""
  out "| # | workload | exit | bytes | total s | last byte → exit s | held s | verdict |"
  out "|---:|---|---:|---:|---:|---:|---:|---|"
  while IFS=$'\t' read -r i wl rc nb total gap held verdict; do
    out "| $i | $wl | $rc | $nb | $total | $gap | $held | $verdict |"
  done < "$d/runs.tsv"
  if [[ -s $d/proxy_problems.log ]]; then
    out ""
    out "- $(epname "$ep") log: $(wc -l < "$d/proxy_problems.log") ERROR/WARN lines during the check (see close-$ep/proxy_problems.log)"
  fi
  out ""
fi

res host.loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
out "- loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
out ""
out "Raw data: \$BENCH_DIR/results/$(basename "$R")/ (per-run TSVs, per-session timings, client errors)."
log "done; summary: $SUMMARY"
