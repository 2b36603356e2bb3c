#!/usr/bin/env bash
# setup.sh — bring up the OpenSSH side of the Gatehouse bench: packages, user,
# CA, keys, configs, and two private sshd instances on loopback (target and
# jump). bench/run.sh calls it; it also runs on its own. Idempotent:
# re-running reuses keys, re-signs the short-lived certificate, reloads an sshd
# whose config changed and starts one that is not running.
# It never uses the system sshd service, /etc/ssh or port 22.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"

[[ $(id -u) == 0 ]] || die "run as root (creates a local user and runs sshd with privilege separation)"

# ---- 1. packages -------------------------------------------------------------
# (hyperfine is not needed: measure.sh alternates endpoints run by run, which
# hyperfine's one-command-after-another blocks cannot do)
install_packages() {
  local need=() p
  [[ -x $SSHD_BIN ]] || need+=(openssh-server)
  command -v ssh > /dev/null && command -v ssh-keygen > /dev/null || need+=(openssh-client)
  command -v ss > /dev/null || need+=(iproute2)
  command -v ps > /dev/null || need+=(procps)
  perl -MIO::Poll -MTime::HiRes -e 1 2> /dev/null || need+=(perl) # bench/tools/*.pl
  command -v timeout > /dev/null || need+=(coreutils)
  ((${#need[@]})) || { log "packages: all present"; return 0; }
  if [[ ${SKIP_INSTALL:-0} == 1 ]]; then
    log "SKIP_INSTALL=1: not installing ${need[*]}"
    return 0
  fi
  log "installing: ${need[*]}"
  # Keep the package from starting the *system* sshd (port 22): a temporary
  # policy-rc.d denies service starts, only when none is already in place.
  local prc=/usr/sbin/policy-rc.d made_prc=0
  if [[ ! -e $prc ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$prc" && chmod 755 "$prc" && made_prc=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || log "apt-get update failed (continuing)"
  apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
  if ((made_prc)); then rm -f "$prc"; trap - EXIT; fi
  for p in "$SSHD_BIN" ssh ssh-keygen ss ps perl timeout; do
    command -v "$p" > /dev/null || die "$p still missing after install"
  done
}
install_packages

# ---- 2. state directory ------------------------------------------------------
if [[ -e $BENCH_DIR || -L $BENCH_DIR ]]; then
  [[ -d $BENCH_DIR && ! -L $BENCH_DIR ]] || die "BENCH_DIR=$BENCH_DIR exists and is not a plain directory"
  [[ $(stat -c %u "$BENCH_DIR") == "$(id -u)" ]] || die "BENCH_DIR=$BENCH_DIR is not owned by $(id -un)"
else
  mkdir -p "$BENCH_DIR"
fi
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P) # absolute: it goes into sshd/ssh configs
K=$BENCH_DIR/keys ETC=$BENCH_DIR/etc RUN=$BENCH_DIR/run LOGD=$BENCH_DIR/log SSH_CFG=$ETC/ssh_config
# 0711: the bench user must traverse it to read authorized_keys/ (sshd reads
# AuthorizedKeysFile as that user); keys/ stays private to root.
chmod 711 "$BENCH_DIR"
mkdir -p "$K" "$ETC" "$RUN" "$LOGD" "$BENCH_DIR/results" "$BENCH_DIR/authorized_keys"
chmod 700 "$K" "$RUN"
chmod 755 "$BENCH_DIR/authorized_keys" "$ETC"

cat > "$BENCH_DIR/bench.env" << EOF
# written by setup.sh; sourced by run.sh and teardown.sh
BENCH_DIR='$BENCH_DIR'
BENCH_USER='$BENCH_USER'
BIND_ADDR='$BIND_ADDR'
TARGET_PORT='$TARGET_PORT'
JUMP_PORT='$JUMP_PORT'
SSHD_BIN='$SSHD_BIN'
SSHD_MAX_STARTUPS='$SSHD_MAX_STARTUPS'
EXTRA_TARGET_PORTS='$EXTRA_TARGET_PORTS'
EOF

# ---- 3. local user -----------------------------------------------------------
if ! id "$BENCH_USER" > /dev/null 2>&1; then
  useradd --create-home --shell "${BENCH_SHELL:-/bin/sh}" \
    --comment "$USER_COMMENT" "$BENCH_USER"
  # '*' = no password login, but not "locked" ('!'), which sshd refuses
  # outright when UsePAM is off.
  usermod -p '*' "$BENCH_USER"
  log "created user $BENCH_USER"
else
  if [[ $(getent shadow "$BENCH_USER" | cut -d: -f2) == '!'* ]]; then
    log "WARNING: user $BENCH_USER exists and is locked; sshd (UsePAM no) will refuse it"
  fi
fi
: > "$BENCH_DIR/authorized_keys/$BENCH_USER" # plain keys the target accepts: none by default
chmod 644 "$BENCH_DIR/authorized_keys/$BENCH_USER"

# ---- 4. keys and certificates ------------------------------------------------
genkey() { [[ -f $1 ]] || ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"; }
genkey "$K/target_host_ed25519" "gatehouse-bench target host key"
genkey "$K/jump_host_ed25519" "gatehouse-bench jump host key"
genkey "$K/user_ca" "gatehouse-bench user CA"
genkey "$K/user_ed25519" "gatehouse-bench user key"
chmod 644 "$K"/*.pub

fresh_cert                                                                 # valid now, short-lived
sign_cert "$K/user_cert_expired.pub" "20200101:20200102" "$BENCH_USER"     # validity in the past
sign_cert "$K/user_cert_wrongprincipal.pub" "-1m:+$CERT_LIFETIME" "not-$BENCH_USER"

# ---- 5. configs --------------------------------------------------------------
write_if_changed() { # FILE <stdin> -> exit 0 when FILE changed
  local tmp; tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  chmod 644 "$tmp"; mv -f "$tmp" "$1"; return 0
}

sshd_common() { # NAME PORT
  cat << EOF
# generated by setup.sh — private sshd "$1" for the gatehouse bench
Port $2
ListenAddress $BIND_ADDR
AddressFamily inet
HostKey $K/${1}_host_ed25519
PidFile $RUN/$1.pid
UsePAM no
StrictModes no
UseDNS no
PermitRootLogin no
AllowUsers $BENCH_USER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
TrustedUserCAKeys $K/user_ca.pub
AuthorizedKeysFile $BENCH_DIR/authorized_keys/%u
PermitUserRC no
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
# 1000+ concurrent pre-auth connections (a bastion opening 1000 sessions at
# once) must not be dropped (default 10:30:100)
MaxStartups $SSHD_MAX_STARTUPS
LogLevel VERBOSE
EOF
}

# The target trusts the bench CA plus, optionally, the bastion's own CA
# (EXTRA_USER_CA_PUB = a file of CA public key lines, e.g. the output of the
# bastion's "print CA public key" command). sshd reads this file at each login.
{
  cat "$K/user_ca.pub"
  if [[ -n ${EXTRA_USER_CA_PUB:-} ]]; then
    [[ -r $EXTRA_USER_CA_PUB ]] || die "EXTRA_USER_CA_PUB=$EXTRA_USER_CA_PUB is not readable"
    grep -v '^[[:space:]]*\(#\|$\)' "$EXTRA_USER_CA_PUB"
  fi
} | write_if_changed "$ETC/target_trusted_user_ca_keys" || true

target_conf() {
  sshd_common target "$TARGET_PORT" | sed "s|^TrustedUserCAKeys .*|TrustedUserCAKeys $ETC/target_trusted_user_ca_keys|"
  cat << EOF
AllowTcpForwarding no
Subsystem sftp internal-sftp
EOF
}
jump_conf() {
  sshd_common jump "$JUMP_PORT"
  cat << EOF
# a jump host: only forwards to the target (ssh -J uses direct-tcpip)
AllowTcpForwarding local
PermitOpen $BIND_ADDR:$TARGET_PORT ${JUMP_EXTRA_PERMITOPEN:-}
PermitTTY no
EOF
}
changed_target=0 changed_jump=0
if target_conf | write_if_changed "$ETC/sshd_target.conf"; then changed_target=1; fi
if jump_conf | write_if_changed "$ETC/sshd_jump.conf"; then changed_jump=1; fi
# Further targets: the same sshd as "target" on their own port, pid file and log.
declare -A changed_extra=()
for name in $(target_names); do
  [[ $name == target ]] && continue
  changed_extra[$name]=0
  target_conf | sed -e "s|^Port .*|Port $(target_port "$name")|" -e "s|^PidFile .*|PidFile $RUN/$name.pid|" \
    -e "s|private sshd \"target\"|private sshd \"$name\"|" | write_if_changed "$ETC/sshd_$name.conf" && changed_extra[$name]=1
done

{
  printf '[%s]:%s %s\n' "$BIND_ADDR" "$TARGET_PORT" "$(cut -d' ' -f1,2 "$K/target_host_ed25519.pub")"
  printf '[%s]:%s %s\n' "$BIND_ADDR" "$JUMP_PORT" "$(cut -d' ' -f1,2 "$K/jump_host_ed25519.pub")"
  for p in $EXTRA_TARGET_PORTS; do
    printf '[%s]:%s %s\n' "$BIND_ADDR" "$p" "$(cut -d' ' -f1,2 "$K/target_host_ed25519.pub")"
  done
} | write_if_changed "$ETC/known_hosts" || true
touch "$ETC/known_hosts.bastion"

# Client side: -F makes ssh ignore /etc/ssh/ssh_config and ~/.ssh/config, and
# ssh -J passes the same -F to the jump hop. Identity lines live in the small
# top-level files so that each offers exactly the certificate it names.
cat << EOF | write_if_changed "$ETC/ssh_config.common" || true
# generated by setup.sh — shared client settings (included by ssh_config*)
Host target
  HostName $BIND_ADDR
  Port $TARGET_PORT
Host jump
  HostName $BIND_ADDR
  Port $JUMP_PORT
# The bastion under test is addressed as: ssh -p \$BASTION_PORT user@$BIND_ADDR <target> <cmd>
# Its host key is learned on first use into a separate file that run.sh resets.
Host $BIND_ADDR
  UserKnownHostsFile $ETC/known_hosts.bastion
  StrictHostKeyChecking accept-new
Host *
  User $BENCH_USER
  IdentityFile $K/user_ed25519
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $ETC/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  CheckHostIP no
  UpdateHostKeys no
  BatchMode yes
  PreferredAuthentications publickey
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  GSSAPIAuthentication no
  ControlMaster no
  ControlPath none
  ForwardAgent no
  ForwardX11 no
  RequestTTY no
  EscapeChar none
  AddressFamily inet
  ConnectTimeout 15
  LogLevel ERROR
EOF
for v in "":user_cert expired:user_cert_expired wrongprincipal:user_cert_wrongprincipal nocert:; do
  suffix=${v%%:*} cert=${v#*:}
  {
    echo "# generated by setup.sh"
    echo "Include $ETC/ssh_config.common"
    if [[ -n $cert ]]; then
      printf 'Host target jump\n  CertificateFile %s\n' "$K/$cert.pub"
    fi
  } | write_if_changed "$ETC/ssh_config${suffix:+.$suffix}" || true
done

# ---- 6. start (or reload) the two sshds --------------------------------------
mkdir -p /run/sshd && chmod 755 /run/sshd # privilege-separation dir sshd requires

start_sshd() { # NAME PORT CHANGED
  local name=$1 port=$2 changed=$3 cfg=$ETC/sshd_$1.conf pid i
  "$SSHD_BIN" -t -f "$cfg" || die "sshd -t rejected $cfg"
  if pid=$(pid_is_ours "$RUN/$name.pid" "$cfg"); then
    if ((changed)); then
      log "$name: config changed, SIGHUP to pid $pid"
      kill -HUP "$pid"
      for ((i = 0; i < 50; i++)); do
        sleep 0.1
        pid=$(pid_is_ours "$RUN/$name.pid" "$cfg") && port_listening "$port" && break
      done
    else
      log "$name: already running (pid $pid)"
    fi
    return 0
  fi
  rm -f "$RUN/$name.pid"
  if port_listening "$port"; then
    die "port $port is already in use by something this bench did not start; pick another (${name^^}_PORT=...)"
  fi
  "$SSHD_BIN" -f "$cfg" -E "$LOGD/$name.log"
  for ((i = 0; i < 100; i++)); do
    if pid=$(pid_is_ours "$RUN/$name.pid" "$cfg") && port_listening "$port"; then
      log "$name: started (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$LOGD/$name.log" >&2 || true
  die "$name sshd did not come up on $BIND_ADDR:$port"
}
start_sshd target "$TARGET_PORT" "$changed_target"
start_sshd jump "$JUMP_PORT" "$changed_jump"
# exact CPU accounting for each instance and its connection processes
cg_attach target "$(cat "$RUN/target.pid")"
cg_attach jump "$(cat "$RUN/jump.pid")"
for name in "${!changed_extra[@]}"; do
  start_sshd "$name" "$(target_port "$name")" "${changed_extra[$name]}"
  cg_attach "$name" "$(cat "$RUN/$name.pid")"
done

# ---- 7. verify authentication ------------------------------------------------
log "verifying authentication (valid cert accepted; expired / wrong principal / no cert refused)"
if ! checks=$(auth_checks); then
  printf '%s\n' "$checks" >&2
  tail -n 20 "$LOGD/target.log" >&2 || true
  die "authentication checks failed"
fi
printf '%s\n' "$checks" | sed 's/^/  /' >&2

# ---- 8. report ---------------------------------------------------------------
cat << EOF
BENCH_DIR=$BENCH_DIR
user:   $BENCH_USER
target: sshd on $BIND_ADDR:$TARGET_PORT pid $(cat "$RUN/target.pid")
jump:   sshd on $BIND_ADDR:$JUMP_PORT pid $(cat "$RUN/jump.pid")
$(for name in $(target_names); do [[ $name == target ]] || echo "$name: sshd on $BIND_ADDR:$(target_port "$name") pid $(cat "$RUN/$name.pid")"; done)
client: ssh -F $SSH_CFG target true
        ssh -F $SSH_CFG -J jump target true
next:   BENCH_DIR=$BENCH_DIR ./measure.sh (add BASTION_PORT=... for the bastion)
EOF
