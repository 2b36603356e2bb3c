#!/usr/bin/env bash
# table.sh RESULTS_DIR — print the bench's summary (markdown) from a results
# dir written by bench/run.sh: results.tsv (key<TAB>value), measure.md (the
# detailed tables) and decide.log. run.sh saves it as RESULTS_DIR/summary.md;
# run it by hand to regenerate the summary.
set -euo pipefail
R=${1:?usage: table.sh RESULTS_DIR}
[[ -f $R/results.tsv ]] || { echo "table.sh: no $R/results.tsv" >&2; exit 1; }

declare -A V=()
while IFS=$'\t' read -r k v; do V[$k]=$v; done < "$R/results.tsv"
g() { printf '%s' "${V[$1]:--}"; }
ratio() { # A B -> A/B
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a == "" || b == "" || a + 0 != a || b + 0 != b || b + 0 == 0) print "-"
    else if (a / b < 0.1) printf "%.3f", a / b
    else printf "%.2f", a / b }'
}
mib() { awk -v k="$1" 'BEGIN { if (k == "-" || k == "") print "-"; else printf "%.1f", k / 1024 }'; }
size() {
  awk -v b="$1" 'BEGIN {
    if (b == "-" || b == "") print "-"
    else if (b % 1073741824 == 0) printf "%d GiB", b / 1073741824
    else if (b % 1048576 == 0) printf "%d MiB", b / 1048576
    else printf "%d bytes", b }'
}
NR=0
[[ $(g meta.norec) == 1 ]] && NR=1
col2() { if ((NR)); then printf ' %s |' "$1"; fi; }
row() { # LABEL DIRECT JUMP GATEHOUSE RATIO NOREC
  printf '| %s | %s | %s | %s | %s |%s\n' "$1" "$2" "$3" "$4" "$5" "$(col2 "$6")"
}
FAILED=""
for k in "${!V[@]}"; do
  if [[ $k == *.fails && ${V[$k]} != 0 ]]; then FAILED+="$k=${V[$k]} "; fi
done
names() { # endpoint keys in the tables
  case $1 in bastion) echo gatehouse ;; bastion2) echo "gatehouse, recording off" ;; *) echo "$1" ;; esac
}

echo "# Gatehouse bench — $(date -u -r "$R/results.tsv" +%Y-%m-%dT%H:%M:%SZ)$([[ $(g meta.quick) == 1 ]] && echo ' (QUICK=1: smoke-test sizes)')"
echo ""
echo "$(g host.nproc) CPUs, $(g meta.ssh), Gatehouse $(g meta.gatehouse). Load average (1 min) $(g host.loadavg_start) at start, $(g host.loadavg_end) at the end of the measurements. Total bench time $(g meta.total_s) s."
echo ""
echo "| measure | direct | jump (\`ssh -J\`) | gatehouse | ratio gatehouse/jump |$( ((NR)) && echo ' gatehouse, recording off |')"
echo "|---|---:|---:|---:|---:|$( ((NR)) && echo '---:|')"
row "session setup \`ssh … target true\`, ms, client defaults (ratio < 1: Gatehouse faster)" \
  "$(g latency.direct.median_ms)" "$(g latency.jump.median_ms)" "$(g latency.bastion.median_ms)" \
  "$(ratio "$(g latency.bastion.median_ms)" "$(g latency.jump.median_ms)")" "$(g latency.bastion2.median_ms)"
row "… key exchange and cipher negotiated on the client's hops" \
  "$(g latency.direct.negotiated)" "$(g latency.jump.negotiated)" "$(g latency.bastion.negotiated)" "-" "$(g latency.bastion2.negotiated)"
for lk in $(for k in "${!V[@]}"; do if [[ $k == latency-*.direct.median_ms ]]; then echo "${k%.direct.median_ms}"; fi; done | sort); do
  row "session setup, ms, \`KexAlgorithms ${lk#latency-}\` on the client's hops" \
    "$(g "$lk.direct.median_ms")" "$(g "$lk.jump.median_ms")" "$(g "$lk.bastion.median_ms")" \
    "$(ratio "$(g "$lk.bastion.median_ms")" "$(g "$lk.jump.median_ms")")" "$(g "$lk.bastion2.median_ms")"
done
for wl in text binary; do
  row "throughput, $wl, MB/s ($(size "$(g tput.bytes)"); ratio ≥ 1: Gatehouse faster)" \
    "$(g tput.$wl.direct.mbps)" "$(g tput.$wl.jump.mbps)" "$(g tput.$wl.bastion.mbps)" \
    "$(ratio "$(g tput.$wl.bastion.mbps)" "$(g tput.$wl.jump.mbps)")" "$(g tput.$wl.bastion2.mbps)"
done
for wl in text binary; do
  row "proxy CPU s per GiB, $wl (jump sshd tree / Gatehouse process)" \
    "-" "$(g tput.$wl.jump.proxy_cpu_s_per_gib)" "$(g tput.$wl.bastion.proxy_cpu_s_per_gib)" \
    "$(ratio "$(g tput.$wl.bastion.proxy_cpu_s_per_gib)" "$(g tput.$wl.jump.proxy_cpu_s_per_gib)")" "$(g tput.$wl.bastion2.proxy_cpu_s_per_gib)"
done
row "concurrency: idle interactive sessions up / N started at once" \
  "-" "$(g conc.jump.up)/$(g conc.jump.n)" "$(g conc.bastion.up)/$(g conc.bastion.n)" "-" "-"
row "concurrency: time to establish them all, s" \
  "-" "$(g conc.jump.all_up_s)" "$(g conc.bastion.all_up_s)" "-" "-"
row "concurrency: proxy RSS with all open, MiB (idle before)" \
  "-" "$(mib "$(g conc.jump.rss_kb)") ($(mib "$(g conc.jump.rss_idle_kb)"))" \
  "$(mib "$(g conc.bastion.rss_kb)") ($(mib "$(g conc.bastion.rss_idle_kb)"))" "-" "-"
row "concurrency: RSS per session over idle, kB (PSS; ratio on PSS)" \
  "-" "$(g conc.jump.delta_rss_per_session_kb) ($(g conc.jump.delta_pss_per_session_kb))" \
  "$(g conc.bastion.delta_rss_per_session_kb) ($(g conc.bastion.delta_pss_per_session_kb))" \
  "$(ratio "$(g conc.bastion.delta_pss_per_session_kb)" "$(g conc.jump.delta_pss_per_session_kb)")" "-"
row "concurrency: RSS $(g conc.settle_s) s after all closed, MiB (peak)" \
  "-" "$(mib "$(g conc.jump.rss_after_kb)")" "$(mib "$(g conc.bastion.rss_after_kb)") ($(mib "$(g conc.bastion.hwm_kb)"))" "-" "-"
row "decision with 100,000 grants in the store, µs (criterion median): pure decision / store read + decision" \
  "-" "-" "$(g decide.pure_us) / $(g decide.store_us)" "-" "-"
row "close check: $(g close.runs) recorded transfers of $(size "$(g close.bytes)") in a row, each ending with the client's exit" \
  "-" "-" "$(g close.verdict) ($(g close.pass)/$(g close.runs)); max $(g close.max_gap_s) s from last byte to exit" "-" "-"
echo ""
echo "Medians over alternating repetitions (session setup: $(g runs.lat) per endpoint, throughput: $(g runs.tput) per endpoint and workload; endpoints take turns, order rotated each repetition). Recording is on for *gatehouse* (its normal configuration); *recording off* is a second, otherwise identical instance whose recordings dir is a regular file, with \`on_failure = \"allow\"\`. Throughput times include session setup. Proxy CPU = CPU time of the jump sshd's process tree or of Gatehouse's cgroup per GiB delivered. Concurrency: jump host at N=$(g conc.jump.n), Gatehouse at N=$(g conc.bastion.n). Failed runs: ${FAILED:-none}. Clients, proxies and target share the machine's $(g host.nproc) CPUs with whatever else runs there: compare endpoints within one run."
echo ""
echo "## Details"
echo ""
if [[ -f $R/measure.md ]]; then sed '1,2d' "$R/measure.md"; fi
if [[ -f $R/decide.log ]]; then
  echo ""
  echo "## cargo bench --bench decide"
  echo ""
  echo '```'
  grep -E '^(decide|store read)|time:' "$R/decide.log" || true
  echo '```'
fi
