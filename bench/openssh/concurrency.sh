# shellcheck shell=bash
# concurrency.sh — the concurrency section of measure.sh (sourced by it, never run on its own):
# N idle interactive sessions per endpoint, opened, held, measured and closed.
#
# The sessions come from one driver process, bounded by its own timeouts:
# - openssh: tools/hold-sessions.pl, one `ssh -tt` client per session;
# - russh (CONC_CLIENT=russh, bastion endpoints only): $SESSIONS_EXE, the built
#   benches/sessions.rs, every session in one process (a few tens of kB each, where an ssh
#   client costs about 1.5 MB), spread round-robin over every target sshd.
# Both write the same files: times, ready.tsv, exit.tsv, up (and err.I or errors.tsv).
HOLD=$HERE/../tools/hold-sessions.pl
DRIVER_PID=
cleanup_conc() { [[ -n $DRIVER_PID ]] && kill -TERM "$DRIVER_PID" 2> /dev/null || true; }
trap cleanup_conc EXIT
trap 'exit 130' INT TERM

mem_fields() { read -r MRSS MPSS MNP <<< "$(mem_tree "$1")"; } # -> MRSS MPSS (kB) MNP
# mem_targets -> TRSS TPSS (kB) TNP summed over every target sshd's tree
mem_targets() {
  local pid r p n
  TRSS=0 TPSS=0 TNP=0
  for pid in "${TARGET_PIDS[@]}"; do
    read -r r p n <<< "$(mem_tree "$pid")"
    TRSS=$((TRSS + r)) TPSS=$((TPSS + p)) TNP=$((TNP + n))
  done
}
vm_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0; }
ep_port() { case $1 in jump) echo "$JUMP_PORT" ;; direct) echo "$TARGET_PORT" ;; *) ep_var "$1" PORT ;; esac; }
# open files of a process (0 when it is gone)
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2> /dev/null | wc -l; }
# ep_nofile EP -> the open-file limit that bounds the endpoint's sessions (none for sshd:
# one process per connection)
ep_nofile() {
  case $1 in
    bastion*) awk '/^Max open files/ { print $4 }' "/proc/$(proxy_pid "$1")/limits" 2> /dev/null || echo 0 ;;
    *) echo 1000000 ;;
  esac
}

declare -A CONC_DONE=()
conc() { # ENDPOINT
  local ep=$1 n d root cfg tag client=openssh
  local nv=CONC_N_${ep^^}
  n=${!nv:-$CONC_N}
  [[ $ep == bastion* && $CONC_CLIENT == russh ]] && client=russh
  # a repeated endpoint (CONC_ENDPOINTS="jump bastion bastion") is round 2, 3, ...
  CONC_DONE[$ep]=$((${CONC_DONE[$ep]:-0} + 1))
  tag=$ep
  ((${CONC_DONE[$ep]} > 1)) && tag=$ep.r${CONC_DONE[$ep]}
  d=$R/conc-$tag
  rm -rf "$d"
  mkdir -p "$d"
  root=$(proxy_pid "$ep")
  res "conc.$tag.client" "$client"
  res "conc.$tag.targets" "${#TARGET_PIDS[@]}"
  # Refuse a ramp the machine cannot hold, with the arithmetic, rather than swap or fail late.
  local fit
  if ! fit=$(ramp_fits "$n" "$client" "$(ep_nofile "$ep")"); then
    log "concurrency $(epname "$ep"): $n sessions do not fit: $(tr '\n' ';' <<< "$fit")"
    res "conc.$tag.n" "$n"
    res "conc.$tag.refused" "$(tr '\n' ';' <<< "$fit")"
    CONC_NOTES+=("- $(epname "$ep")${tag#"$ep"}: $n sessions refused, they do not fit: $(tr '\n' ';' <<< "$fit")")
    return 0
  fi
  local upt=$CONC_TIMEOUT holdmax=$CONC_HOLD_MAX
  if [[ $client == russh ]]; then
    ((n / CONC_MIN_RATE > upt)) && upt=$((n / CONC_MIN_RATE))
    holdmax=$((upt + 300)) # the samples over thousands of processes take a while
  fi
  fresh_cert
  local cmd_shown
  if [[ $client == russh ]]; then
    [[ -x $SESSIONS_EXE ]] || die "CONC_CLIENT=russh needs SESSIONS_EXE (the built benches/sessions.rs)"
    local hk; hk=$(ep_var "$ep" HOST_KEY)
    [[ -r $hk ]] || die "CONC_CLIENT=russh needs ${ep^^}_HOST_KEY (the bastion's public host key)"
    ARGV=("$SESSIONS_EXE" --dir "$d" --n "$n" --addr "$BIND_ADDR" --port "$(ep_port "$ep")"
      --user "$BASTION_USER" --key "$K/user_ed25519" --host-key "$hk"
      --targets "$(target_names | tr ' ' ,)" --inflight "$CONC_INFLIGHT" --rate "$CONC_RATE"
      --connect-timeout "$CONC_CONNECT_TIMEOUT" --up-timeout "$upt" --stall "$CONC_STALL"
      --hold-max "$holdmax" --close-wait "$CONC_CLOSE_WAIT")
    cmd_shown=$(shown "$(join_q "${ARGV[@]}")")
  else
    cfg=$(variant_cfg ConnectTimeout "$CONC_CONNECT_TIMEOUT")
    ep_argv "$ep" "$cfg" -tt
    cmd_shown=$(shown "$(join_q "${ARGV[@]}")")
    ARGV=("$HOLD" "$d" "$n" "$upt" "$holdmax" "$CONC_CLOSE_WAIT" "$CONC_STALL" -- "${ARGV[@]}")
  fi
  mem_fields "$root"; local irss=$MRSS ipss=$MPSS
  mem_targets; local itrss=$TRSS itpss=$TPSS
  local lmark; lmark=$(log_mark "$ep")
  local p0 p1 tc0 tc1 cc0 cc1; p0=$(proxy_cpu_ns "$ep") tc0=$(target_cpu_ns)
  cc0=$(client_cpu_ns)
  log "concurrency $(epname "$ep")${tag#"$ep"}: $n idle interactive sessions over ${#TARGET_PIDS[@]} target sshd(s) ($cmd_shown)"
  "${ARGV[@]}" > "$d/driver.log" 2>&1 &
  DRIVER_PID=$!
  local deadline=$((${EPOCHREALTIME%.*} + upt + 30))
  while [[ ! -e $d/up ]] && kill -0 "$DRIVER_PID" 2> /dev/null && ((${EPOCHREALTIME%.*} < deadline)); do sleep 0.1; done
  p1=$(proxy_cpu_ns "$ep") tc1=$(target_cpu_ns)
  sleep 1 # let the proxy settle
  local t_sample=$EPOCHREALTIME
  mem_fields "$root"; local rss=$MRSS pss=$MPSS nprocs=$MNP
  local fds; fds=$(nfds "$root")
  local conns; conns=$(ss -Htn state established "( sport = :$(ep_port "$ep") )" 2> /dev/null | wc -l)
  mem_fields "$DRIVER_PID"; local crss=$MRSS cpss=$MPSS cnp=$MNP
  mem_targets; local trss=$TRSS tpss=$TPSS tnp=$TNP
  log "sampled with the sessions open in $(awk -v a="$t_sample" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s; releasing"
  : > "$d/release"
  wait "$DRIVER_PID" 2> /dev/null || true
  DRIVER_PID=
  cc1=$(client_cpu_ns) # the driver and every ssh client it reaped, whole test
  sleep "$CONC_SETTLE"
  mem_fields "$root"; local arss=$MRSS apss=$MPSS
  mem_targets; local atrss=$TRSS atpss=$TPSS
  local hwm=0; [[ $ep == bastion* ]] && hwm=$(vm_hwm "$root") # VmHWM: the peak since the start
  [[ -f $d/times ]] || { log "$(epname "$ep"): session driver failed: $(tail -c 300 "$d/driver.log")"; return 0; }
  local t0 t_launched t_up t_rel t_closed
  read -r t0 t_launched t_up t_rel t_closed < "$d/times"
  awk -F'\t' '{ printf "%.6f\n", $3 - $2 }' "$d/ready.tsv" > "$d/setup_each.txt"
  local nready; nready=$(wc -l < "$d/ready.tsv")
  local t_all; t_all=$(awk -F'\t' -v t0="$t0" 'BEGIN { m = "" } { x = $3 - t0; if (m == "" || x > m) m = x } END { if (m != "") printf "%.2f", m }' "$d/ready.tsv")
  # ended before the release / nonzero exit (not counting forced ends) / forced at the end / open at the sample
  local early fails forced open
  early=$(awk -F'\t' -v t="$t_rel" '$2 != "lost" && $3 > 0 && $3 < t' "$d/exit.tsv" | wc -l)
  fails=$(awk -F'\t' '$2 != "0" && $4 != "forced"' "$d/exit.tsv" | wc -l)
  forced=$(awk -F'\t' '$4 == "forced" || $2 == "lost"' "$d/exit.tsv" | wc -l)
  open=$(awk -F'\t' -v ts="$t_sample" 'NR == FNR { if ($2 == "lost" || $3 == 0 || $3 > ts) alive[$1] = 1; next } alive[$1]' "$d/exit.tsv" "$d/ready.tsv" | wc -l)
  local each_med each_max
  read -r each_med _ _ each_max _ < <(stats "$d/setup_each.txt")
  # client-side errors, grouped (digits as N)
  if [[ -f $d/errors.tsv ]]; then cut -f2- "$d/errors.tsv"; else cat "$d"/err.* 2> /dev/null; fi |
    tr -d '\r' | sed 's/[0-9]\{1,\}/N/g' | sort | uniq -c | sort -rn | head -n 8 > "$d/client_errors.txt" || true
  log_since "$ep" "$lmark" > "$d/proxy.log"
  log_problems < "$d/proxy.log" > "$d/proxy_problems.log"
  local nprob; nprob=$(wc -l < "$d/proxy_problems.log")
  local close_s; close_s=$(awk -v a="$t_rel" -v b="$t_closed" 'BEGIN { printf "%.2f", b - a }')
  local nclosed; nclosed=$(awk -F'\t' -v t="$t_rel" -v c="$t_closed" '$2 != "lost" && $3 >= t && $3 <= c' "$d/exit.tsv" | wc -l)
  per() { awk -v a="$1" -v b="$2" -v n="$open" 'BEGIN { if (!n) print "-"; else printf "%.0f", (a - b) / n }'; }
  res "conc.$tag.n" "$n"
  res "conc.$tag.up" "$nready"
  res "conc.$tag.open_at_sample" "$open"
  res "conc.$tag.ended_early" "$early"
  res "conc.$tag.rc_nonzero" "$fails"
  res "conc.$tag.forced" "$forced"
  res "conc.$tag.launch_s" "$(awk -v a="$t0" -v b="$t_launched" 'BEGIN { printf "%.2f", b - a }')"
  res "conc.$tag.all_up_s" "${t_all:--}"
  res "conc.$tag.setup_median_s" "$(fmt %.3f "$each_med")"
  res "conc.$tag.setup_max_s" "$(fmt %.3f "$each_max")"
  res "conc.$tag.rss_idle_kb" "$irss"
  res "conc.$tag.pss_idle_kb" "$ipss"
  res "conc.$tag.rss_kb" "$rss"
  res "conc.$tag.pss_kb" "$pss"
  res "conc.$tag.rss_after_kb" "$arss"
  res "conc.$tag.pss_after_kb" "$apss"
  res "conc.$tag.hwm_kb" "$hwm"
  res "conc.$tag.fds" "$fds"
  res "conc.$tag.delta_rss_per_session_kb" "$(per "$rss" "$irss")"
  res "conc.$tag.delta_pss_per_session_kb" "$(per "$pss" "$ipss")"
  res "conc.$tag.target_rss_idle_kb" "$itrss"
  res "conc.$tag.target_pss_idle_kb" "$itpss"
  res "conc.$tag.target_rss_kb" "$trss"
  res "conc.$tag.target_pss_kb" "$tpss"
  res "conc.$tag.target_pss_after_kb" "$atpss"
  res "conc.$tag.target_procs" "$tnp"
  res "conc.$tag.target_delta_pss_per_session_kb" "$(per "$tpss" "$itpss")"
  res "conc.$tag.client_rss_kb" "$crss"
  res "conc.$tag.client_pss_kb" "$cpss"
  res "conc.$tag.client_procs" "$cnp"
  res "conc.$tag.client_pss_per_session_kb" "$(per "$cpss" 0)"
  res "conc.$tag.close_all_s" "$close_s"
  res "conc.$tag.closed" "$nclosed"
  res "conc.$tag.proxy_cpu_ms_per_session" "$(awk -v a="$p0" -v b="$p1" -v n="$n" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.1f", (b - a) / 1e6 / n }')"
  res "conc.$tag.proxy_log_problems" "$nprob"
  res "conc.$tag.target_cpu_ms_per_session" "$(awk -v a="$tc0" -v b="$tc1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }')"
  res "conc.$tag.client_cpu_ms_per_session" "$(awk -v a="$cc0" -v b="$cc1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }')"
  res "conc.$tag.procs" "$nprocs"
  res "conc.$tag.conns" "$conns"
  local name; name="$(epname "$ep")${tag#"$ep"}"
  CONC_ROWS+=("$(awk -v e="$name" -v ok="$nready" -v n="$n" -v op="$open" -v fl="$fails" -v ee="$early" -v fo="$forced" \
    -v tl="$(awk -v a="$t0" -v b="$t_launched" 'BEGIN { print b - a }')" -v ta="${t_all:-nan}" -v em="$each_med" -v ex="$each_max" \
    -v np="$nprocs" -v cn="$conns" -v rss="$rss" -v pss="$pss" -v irss="$irss" -v ipss="$ipss" -v arss="$arss" -v hwm="$hwm" \
    -v tc="$close_s" -v nc="$nclosed" -v pc="$p0" -v pc1="$p1" -v np2="$nprob" -v t0c="$tc0" -v t1c="$tc1" -v c0c="$cc0" -v c1c="$cc1" 'BEGIN {
      op1 = op ? op : 1
      cpu = (pc == "" || pc1 == "") ? "-" : sprintf("%.1f", (pc1 - pc) / 1e6 / n)
      printf "| %s | %d/%d (%d open at sample, %d ended early, %d exit!=0, %d never ended) | %.2f | %s | %.3f / %.3f | %s / %.1f / %.1f | %d procs, %d conns | %.1f | %.1f | %.0f | %.0f | %.1f (%+.1f) | %s | %.2f (%d/%d) | %d |",
        e, ok, n, op, ee, fl, fo, tl, ta, em, ex, cpu, (t1c - t0c) / 1e6 / n, (c1c - c0c) / 1e6 / n, np, cn, irss / 1024, rss / 1024, (rss - irss) / op1, (pss - ipss) / op1,
        arss / 1024, (arss - irss) / 1024, (hwm ? sprintf("%.1f", hwm / 1024) : "-"), tc, nc, n, np2 }')")
  # where the machine's memory went: proxy, targets, clients
  mrow() { # PARTY PROCS RSS_IDLE PSS_IDLE RSS PSS PSS_AFTER
    awk -v e="$name" -v who="$1" -v np="$2" -v ir="$3" -v ip="$4" -v r="$5" -v p="$6" -v ap="$7" -v op="$open" 'BEGIN {
      printf "| %s | %s | %s | %.1f / %.1f | %.1f / %.1f | %s | %s |", e, who, np, ir / 1024, ip / 1024, r / 1024, p / 1024,
        (op ? sprintf("%.0f", (p - ip) / op) : "-"), (ap == "-" ? "-" : sprintf("%.1f", ap / 1024)) }'
  }
  CONC_MEM_ROWS+=("$(mrow "$(epname "$ep") ($fds open files)" "$nprocs" "$irss" "$ipss" "$rss" "$pss" "$apss")")
  CONC_MEM_ROWS+=("$(mrow "${#TARGET_PIDS[@]} target sshd(s)" "$tnp" "$itrss" "$itpss" "$trss" "$tpss" "$atpss")")
  CONC_MEM_ROWS+=("$(mrow "clients ($client)" "$cnp" 0 0 "$crss" "$cpss" -)")
  if [[ -s $d/client_errors.txt ]]; then
    CONC_NOTES+=("- $name client errors (count, message with digits as N): $(awk '{ $1 = $1; printf "%s%s", (NR > 1 ? "; " : ""), $0 }' "$d/client_errors.txt")")
  fi
  if ((nprob)); then
    CONC_NOTES+=("- $name log: $nprob ERROR/WARN lines during the test; most frequent: $(sed -E 's/^[^ ]+ +//; s/[0-9a-f-]{20,}/X/g; s/[0-9]+/N/g' "$d/proxy_problems.log" | sort | uniq -c | sort -rn | head -n 3 | awk '{ $1 = $1; printf "%s%s", (NR > 1 ? " | " : ""), $0 }')")
  fi
}

if has_section concurrency; then
  CONC_ROWS=() CONC_MEM_ROWS=() CONC_NOTES=()
  for ep in $CONC_ENDPOINTS; do
    [[ " ${ENDPOINTS[*]} " == *" $ep "* ]] || continue
    conc "$ep"
  done
  out "## Concurrency: idle interactive sessions (\`ssh -tt ... target\`, a shell on the target) opened and held"
  out ""
  out "All N sessions come from one driver process: tools/hold-sessions.pl with one \`ssh -tt\` client per session, or, for a Gatehouse endpoint with CONC_CLIENT=russh, benches/sessions.rs, which opens every session itself (the same requests: public-key login, pty, the target's name; at most $CONC_INFLIGHT starting at once) and spreads them round-robin over the ${#TARGET_PIDS[@]} target sshd(s). A session is up when the target shell has answered \`echo RE\"\"ADY\`; after the memory sample each gets \`exit\`. Memory of the proxy's process tree (listener + descendants): before (idle), 1 s after the last session came up, and $CONC_SETTLE s after all closed. Δ/session = (with N − idle) / sessions open at the sample. Peak = the bastion's VmHWM. CPU per session started: the proxy's and the target sshds' from the start until all were up, the clients' (ssh processes or the load client, and the driver) over the whole test. *never ended* = sessions still open when the driver gave up waiting (${CONC_CLOSE_WAIT}s after the release, or ${CONC_STALL}s without progress), then killed or dropped."
  out ""
  out "| endpoint | up | launch s | all up s | per-session setup median / max s | CPU ms/session: proxy / target sshd / clients | proxy tree | idle RSS MiB | RSS with N MiB | ΔRSS/session kB | ΔPSS/session kB | RSS after close MiB (vs idle) | peak RSS MiB | close all s (closed) | proxy log ERROR/WARN |"
  out "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${CONC_ROWS[@]}"; do out "$r"; done
  out ""
  if ((${#CONC_MEM_ROWS[@]})); then
    out "Where the memory went (RSS counts pages shared between processes once per process; PSS splits them, so compare PSS):"
    out ""
    out "| endpoint | party | processes with N | RSS / PSS idle MiB | RSS / PSS with N MiB | ΔPSS/session kB | PSS $CONC_SETTLE s after close MiB |"
    out "|---|---|---:|---:|---:|---:|---:|"
    for r in "${CONC_MEM_ROWS[@]}"; do out "$r"; done
    out ""
  fi
  for r in "${CONC_NOTES[@]}"; do out "$r"; done
  if ((${#CONC_NOTES[@]})); then out ""; fi
fi
