#!/usr/bin/env bash
# bench/sftp.sh — SFTP download throughput of one file through Gatehouse, against the same
# `sftp` straight to the target and through a plain OpenSSH jump host (sftp -J), on loopback.
#
# Starts, in a temporary directory: a target sshd (trusting the Gatehouse CA, with the sftp
# subsystem), a jump sshd, and `gatehouse serve` with a role that may read the file; takes a
# self-service grant; then downloads the file to /dev/null with each path in turn, REPS times,
# and prints the median time, throughput and the proxy's CPU seconds per GiB. Stops everything
# it started when it ends. Run as root (sshd logs in as root here, as in the tests).
#
#   bench/sftp.sh                      # 1 GiB, 3 repetitions, target/release/gatehouse
#   SIZE_MIB=256 REPS=5 GATEHOUSE_BIN=target/debug/gatehouse bench/sftp.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$REPO/target/release/gatehouse}
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-3}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
[[ -x $GATEHOUSE_BIN ]] || { echo "no Gatehouse binary at $GATEHOUSE_BIN" >&2; exit 1; }

D=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-sftp-bench.XXXXXX")
PIDS=()
cleanup() {
  [[ ${KEEP:-0} == 1 ]] && { echo "left running in $D" >&2; return; }
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

mkdir -p "$D/data" "$D/bastion/policies" /run/sshd
ssh-keygen -q -t ed25519 -N '' -C alice -f "$D/alice"
ssh-keygen -q -t ed25519 -N '' -C target -f "$D/target_host"
ssh-keygen -q -t ed25519 -N '' -C jump -f "$D/jump_host"
cp "$D/alice.pub" "$D/authorized_keys"
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$D/data/big"

PT=$(free_port); PJ=$(free_port); PG=$(free_port)
printf 'listen = "127.0.0.1:%s"\n' "$PG" > "$D/bastion/gatehouse.toml"
gh() { "$GATEHOUSE_BIN" "$@" --config "$D/bastion/gatehouse.toml"; }
gh ca public-key > "$D/ca.pub"

sshd_config() { # port host_key extra
  printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s.pid\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\nSubsystem sftp /usr/lib/openssh/sftp-server\n%s\n' \
    "$1" "$2" "$2" "$D/authorized_keys" "$3"
}
sshd_config "$PT" "$D/target_host" "TrustedUserCAKeys $D/ca.pub" > "$D/target.conf"
sshd_config "$PJ" "$D/jump_host" "AllowTcpForwarding yes" > "$D/jump.conf"
/usr/sbin/sshd -D -f "$D/target.conf" -E "$D/target.log" & PIDS+=($!)
/usr/sbin/sshd -D -f "$D/jump.conf" -E "$D/jump.log" & PIDS+=($!)

cat > "$D/bastion/policies/main.toml" << EOF
[[user]]
name = "alice"
keys = ["$(cat "$D/alice.pub")"]
groups = ["bench"]

[[target]]
name = "web-01"
address = "127.0.0.1"
port = $PT
host_keys = ["$(cat "$D/target_host.pub")"]

[[role]]
name = "files"
members = ["bench"]
targets = ["web-01"]
login = "root"
approvals = 0
files = { read = ["$D/data/**"] }
EOF
gh check > /dev/null
"$GATEHOUSE_BIN" serve --config "$D/bastion/gatehouse.toml" > "$D/gatehouse.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
wait_port "$PT"; wait_port "$PJ"; wait_port "$PG"
sleep 0.5

{
  echo "[127.0.0.1]:$PT $(cat "$D/target_host.pub")"
  echo "[127.0.0.1]:$PJ $(cat "$D/jump_host.pub")"
  echo "[127.0.0.1]:$PG $(ssh-keygen -y -f "$D/bastion/data/keys/host_ed25519")"
} > "$D/known_hosts"
# A config file rather than -o options: the ssh that -J starts for the jump host reads it too.
cat > "$D/ssh_config" << EOF
Host *
  IdentityFile $D/alice
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking yes
  UserKnownHostsFile $D/known_hosts
  LogLevel ERROR
EOF
SSH_OPTS=(-F "$D/ssh_config")
ssh "${SSH_OPTS[@]}" -p "$PG" alice@127.0.0.1 request web-01 --role files --for 1h --reason bench > /dev/null

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
TICKS=$(getconf CLK_TCK)

declare -A TIMES CPU
run_one() { # name, then the sftp arguments; the remote path comes last in the batch
  local name=$1 path=$2; shift 2
  local before after start end
  before=$(cpu_of "$GPID")
  start=$EPOCHREALTIME
  echo "get $path /dev/null" | sftp "${SSH_OPTS[@]}" -b - "$@" > /dev/null
  end=$EPOCHREALTIME
  after=$(cpu_of "$GPID")
  TIMES[$name]+="$(echo "$end - $start" | bc -l) "
  CPU[$name]+="$(( after - before )) "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for rep in $(seq "$REPS"); do
  run_one direct "$D/data/big" -P "$PT" root@127.0.0.1
  run_one jump "$D/data/big" -J "root@127.0.0.1:$PJ" -P "$PT" root@127.0.0.1
  run_one gatehouse "/web-01$D/data/big" -P "$PG" alice@127.0.0.1
  echo "repetition $rep of $REPS done" >&2
done

printf '\nSFTP download of %s MiB to /dev/null, median of %s (%s)\n\n' "$SIZE_MIB" "$REPS" "$("$GATEHOUSE_BIN" --version 2> /dev/null || echo gatehouse)"
printf '| path | seconds | MiB/s | Gatehouse CPU s/GiB |\n|---|---:|---:|---:|\n'
for name in direct jump gatehouse; do
  t=$(echo "${TIMES[$name]}" | median)
  rate=$(echo "$SIZE_MIB / $t" | bc -l)
  cpu=-
  if [[ $name == gatehouse ]]; then
    c=$(echo "${CPU[$name]}" | median)
    cpu=$(printf '%.2f' "$(echo "$c / $TICKS * 1024 / $SIZE_MIB" | bc -l)")
  fi
  printf '| %s | %.2f | %.0f | %s |\n' "$name" "$t" "$rate" "$cpu"
done
