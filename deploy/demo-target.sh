#!/usr/bin/env bash
# A throwaway SSH target for trying Gatehouse on one machine.
#
# Starts a local OpenSSH sshd on 127.0.0.1:2201 that trusts the Gatehouse user CA, and writes
# policies/demo.toml: you (with your SSH key) as a Gatehouse user, the demo target with its
# host key pinned, and a role that lets you log in to it as your own account, with a self-service
# grant (no approval).
#
# Usage:
#   deploy/demo-target.sh [DIR]                 start (or restart) the demo target
#   deploy/demo-target.sh --config FILE         the same, naming the config file
#   deploy/demo-target.sh stop [DIR]            stop it
#
# DIR is a Gatehouse deployment made by `gatehouse init DIR` (default: the current directory).
#
# Environment:
#   PORT=2201                                   port of the demo sshd (127.0.0.1 only)
#   DEMO_DIR=DIR/data/demo-target               host key, sshd_config, pid file and log
#   DEMO_KEY=~/.ssh/id_ed25519.pub              your public key; without one, a key pair is made
#                                               in DEMO_DIR (then pass `-i` to ssh)
#   DEMO_USER=<your login name, or "demo">      your user name on the bastion
#   GATEHOUSE=gatehouse                         the gatehouse binary (default: on PATH, else
#                                               target/release or target/debug of this repo)
#   SSHD=/usr/sbin/sshd                         the OpenSSH server binary
#
# Without root, sshd can only log in as the user running it, so the demo login is always your
# own account (`id -un`).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

die() {
    echo "demo-target: $*" >&2
    exit 1
}

# Shell-quoted, for commands printed to be pasted.
q() { printf '%q' "$1"; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"
}

# --- arguments -------------------------------------------------------------------------------
action=start
deploy_dir=
config=
while [ $# -gt 0 ]; do
    case $1 in
        start | stop) action=$1 ;;
        --config) [ $# -ge 2 ] || die "--config needs a file"; config=$2; shift ;;
        --config=*) config=${1#--config=} ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$deploy_dir" ] || die "more than one directory given"; deploy_dir=$1 ;;
    esac
    shift
done
if [ -n "$config" ]; then
    [ -z "$deploy_dir" ] || die "give either DIR or --config FILE, not both"
    [ -f "$config" ] || die "$config: no such file"
    deploy_dir=$(dirname "$config")
else
    deploy_dir=${deploy_dir:-.}
    config=$deploy_dir/gatehouse.toml
    [ -f "$config" ] || die "$config: no such file; create a deployment first: gatehouse init $(q "$deploy_dir")"
fi
deploy_dir=$(cd "$deploy_dir" && pwd)
config=$deploy_dir/$(basename "$config")

port=${PORT:-2201}
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "PORT=$port is not a port number"
fi
demo_dir=${DEMO_DIR:-$deploy_dir/data/demo-target}
case $demo_dir in /*) ;; *) demo_dir=$PWD/$demo_dir ;; esac
sshd_config=$demo_dir/sshd_config
pid_file=$demo_dir/sshd.pid
log_file=$demo_dir/sshd.log

# A top-level string key of gatehouse.toml (before the first [table]); empty when unset.
config_value() {
    awk -v key="$1" '
        /^[ \t]*\[/ { exit }
        $0 ~ "^[ \t]*" key "[ \t]*=" {
            if (match($0, /"[^"]*"/)) { print substr($0, RSTART + 1, RLENGTH - 2); exit }
        }' "$config"
}

# The pid of the demo sshd started from this DEMO_DIR, if it is running.
running_pid() {
    local pid args
    [ -s "$pid_file" ] || return 1
    pid=$(cat "$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Only a process started with our config file counts (the pid may have been reused).
    if [ -r "/proc/$pid/cmdline" ]; then
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    else
        args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
    fi
    case $args in *"$sshd_config"*) echo "$pid" ;; *) return 1 ;; esac
}

stop_sshd() {
    local pid i
    pid=$(running_pid) || return 1
    kill "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$i" -lt 50 ] || die "sshd (pid $pid) did not stop"
        sleep 0.1
    done
    rm -f "$pid_file"
    echo "stopped the demo target (sshd pid $pid)"
}

policies=$(config_value policies)
policies=${policies:-policies}
case $policies in /*) ;; *) policies=$deploy_dir/$policies ;; esac

if [ "$action" = stop ]; then
    stop_sshd || echo "the demo target is not running (no live pid in $pid_file)"
    if [ -f "$policies/demo.toml" ]; then
        echo "$policies/demo.toml is still there; delete it and reload Gatehouse to remove the demo."
    fi
    exit 0
fi

# --- tools -----------------------------------------------------------------------------------
if [ -n "${GATEHOUSE:-}" ]; then
    gatehouse=$GATEHOUSE
elif command -v gatehouse >/dev/null 2>&1; then
    gatehouse=$(command -v gatehouse)
elif [ -x "$repo_root/target/release/gatehouse" ]; then
    gatehouse=$repo_root/target/release/gatehouse
elif [ -x "$repo_root/target/debug/gatehouse" ]; then
    gatehouse=$repo_root/target/debug/gatehouse
else
    die "no gatehouse binary: build it (cargo build --release) or set GATEHOUSE=/path/to/gatehouse"
fi
sshd=${SSHD:-}
if [ -z "$sshd" ]; then
    if [ -x /usr/sbin/sshd ]; then
        sshd=/usr/sbin/sshd
    else
        sshd=$(command -v sshd) || die "no sshd: install the OpenSSH server (e.g. apt-get install openssh-server)"
    fi
fi
case $sshd in /*) ;; *) die "SSHD must be an absolute path (sshd re-executes itself)" ;; esac
command -v ssh-keygen >/dev/null 2>&1 || die "no ssh-keygen: install the OpenSSH client"

# --- where things go -------------------------------------------------------------------------
[ -d "$policies" ] || die "$policies: the policy directory does not exist"
listen=$(config_value listen)
listen=${listen:-127.0.0.1:2222}
bastion_port=${listen##*:}
bastion_host=${listen%:*}
bastion_host=${bastion_host#[}
bastion_host=${bastion_host%]}
case $bastion_host in 0.0.0.0 | "") bastion_host=127.0.0.1 ;; ::) bastion_host=::1 ;; esac

mkdir -p "$demo_dir"
chmod 700 "$demo_dir"

# --- keys ------------------------------------------------------------------------------------
if [ ! -f "$demo_dir/host_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C gatehouse-demo-target -f "$demo_dir/host_ed25519"
    echo "created the demo target's host key $demo_dir/host_ed25519"
fi
read -r host_key_type host_key_data _ <"$demo_dir/host_ed25519.pub"

"$gatehouse" ca public-key --config "$config" >"$demo_dir/ca.pub.new"
mv "$demo_dir/ca.pub.new" "$demo_dir/ca.pub"

login=$(id -un)
[[ $login =~ ^[a-z_][a-z0-9_.-]{0,31}$ ]] ||
    die "your login name \"$login\" is not one Gatehouse can log in as ([a-z_][a-z0-9_.-]{0,31}); run this as another user"
if [ "$(id -u)" -eq 0 ]; then
    # sshd running as root needs its privilege separation directory.
    [ -d /run/sshd ] || mkdir -m 0755 /run/sshd
fi

user=${DEMO_USER:-$login}
if ! [[ $user =~ ^[a-z_][a-z0-9_.-]{0,31}$ ]]; then
    [ -z "${DEMO_USER:-}" ] || die "DEMO_USER=$user is not a valid Gatehouse user name ([a-z_][a-z0-9_.-]{0,31})"
    user=demo
fi

identity_hint=
if [ -n "${DEMO_KEY:-}" ]; then
    user_key=$DEMO_KEY
    [ -f "$user_key" ] || die "DEMO_KEY=$user_key: no such file"
elif [ -f "$HOME/.ssh/id_ed25519.pub" ]; then
    user_key=$HOME/.ssh/id_ed25519.pub
else
    if [ ! -f "$demo_dir/user_ed25519" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "$user@gatehouse-demo" -f "$demo_dir/user_ed25519"
        echo "created a key pair for you: $demo_dir/user_ed25519 (no ~/.ssh/id_ed25519.pub found)"
    fi
    user_key=$demo_dir/user_ed25519.pub
    identity_hint=" -i $(q "$demo_dir/user_ed25519")"
fi
ssh-keygen -l -f "$user_key" >/dev/null 2>&1 || die "$user_key is not an SSH public key"
read -r user_key_type user_key_data _ <"$user_key"

# --- sshd ------------------------------------------------------------------------------------
cat >"$sshd_config" <<EOF
# The Gatehouse demo target; rewritten by deploy/demo-target.sh on every start.
ListenAddress 127.0.0.1:$port
HostKey "$demo_dir/host_ed25519"
PidFile "$demo_dir/sshd.pid"
LogLevel VERBOSE

# Only certificates from the Gatehouse CA; the certificate's principal must be the login name.
TrustedUserCAKeys "$demo_dir/ca.pub"
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password

# A throwaway sshd, possibly not running as root: no PAM, no ownership checks on the files.
UsePAM no
StrictModes no

AcceptEnv LANG LC_*
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
EOF

"$sshd" -t -f "$sshd_config" || die "sshd rejected $sshd_config"
if running_pid >/dev/null; then
    stop_sshd >/dev/null
    echo "restarting the demo target"
fi
log_start=0
[ ! -f "$log_file" ] || log_start=$(wc -c <"$log_file")
"$sshd" -f "$sshd_config" -E "$log_file" || {
    tail -n 5 "$log_file" >&2 || true
    die "sshd did not start (is port $port in use? set PORT=…); log: $log_file"
}

# Wait until it answers with the host key we pinned.
listening=
for _ in $(seq 50); do
    if ssh-keyscan -T 1 -t ed25519 -p "$port" 127.0.0.1 2>/dev/null | grep -qF "$host_key_data"; then
        listening=yes
        break
    fi
    if tail -c "+$((log_start + 1))" "$log_file" 2>/dev/null | grep -q "Cannot bind any address"; then
        die "port $port is in use; choose another with PORT=…"
    fi
    sleep 0.1
done
if [ -z "$listening" ]; then
    tail -n 5 "$log_file" >&2 || true
    die "sshd is not answering on 127.0.0.1:$port; log: $log_file"
fi

# --- policy ----------------------------------------------------------------------------------
cat >"$policies/demo.toml.new" <<EOF
# The demo target, written by deploy/demo-target.sh. Delete this file and reload Gatehouse
# (SIGHUP) to remove it; stop the target with: kill \$(cat $(q "$pid_file"))

[[user]]
name   = "$user"
keys   = ["$user_key_type $user_key_data $user@demo"]
groups = ["demo"]

[[target]]
name      = "demo"
address   = "127.0.0.1"
port      = $port
host_keys = ["$host_key_type $host_key_data"]
labels    = { env = "demo" }

[[role]]
name         = "demo-shell"
members      = ["demo"]
targets      = ["demo"]
login        = "$login"
approvals    = 0
max_duration = "8h"
shell        = "full"
EOF
mv "$policies/demo.toml.new" "$policies/demo.toml"

if ! "$gatehouse" check --config "$config"; then
    echo >&2
    echo "demo-target: the policy does not load with demo.toml (above). If user \"$user\" or" \
        "its key is already in another policy file, run again with DEMO_USER=<another name>." >&2
    echo "The demo target is running; stop it with: kill \$(cat $(q "$pid_file"))" >&2
    exit 1
fi

cat <<EOF

The demo target is running: sshd on 127.0.0.1:$port (pid $(cat "$pid_file")), trusting the Gatehouse CA.
  log:      $log_file
  stop it:  kill \$(cat $(q "$pid_file"))     (or: ${DEMO_DIR:+DEMO_DIR=$(q "$demo_dir") }$(q "$0") stop $(q "$deploy_dir"))

Wrote $policies/demo.toml: user "$user" (key $user_key), target "demo",
role "demo-shell" (log in as "$login", no approval needed).

Next:
  1. Load the new policy: send SIGHUP to the running gatehouse (kill -HUP <pid>), or
     (re)start it:  $(q "$gatehouse") serve --config $(q "$config")
  2. Take a grant (the demo role is self-service, still time-bound):
     ssh -p $bastion_port$identity_hint $user@$bastion_host request demo --role demo-shell --for 1h --reason trying Gatehouse
  3. ssh -t -p $bastion_port$identity_hint $user@$bastion_host demo
EOF
if [ "$(id -u)" -ne 0 ]; then
    echo
    echo "(sshd runs as $login, so the demo target can only log you in as $login.)"
fi
