#!/usr/bin/env bash
# A real single-node SLURM cluster (with accounting) for tests and CI.
#
# Debian 12, root, no systemd. Every config, state, log and PID file lives
# under one directory, so the cluster never touches /etc/slurm, /run/munge or
# /var/lib/mysql, and `rm -rf` of that directory is a complete reset.
#
#   scripts/slurm/cluster.sh install|start|stop|restart|status|env
#   eval "$(scripts/slurm/cluster.sh env)"    # clients find it via SLURM_CONF
#
# Environment (all optional):
#   SLURM_CLUSTER_DIR    state directory        (default /tmp/shard-launcher-slurm)
#   SLURM_CLUSTER_CPUS   CPUs the node claims   (default 8; more than the machine
#                        has, so several 1-CPU array tasks run at once)
#   SLURM_CLUSTER_PORT   first of 4 TCP ports   (default 6817: slurmctld, slurmd,
#                        slurmdbd, mariadb on 127.0.0.1)
#   SLURM_CLUSTER_START_TIMEOUT  seconds to wait for each daemon (default 60)
set -euo pipefail

DIR=${SLURM_CLUSTER_DIR:-/tmp/shard-launcher-slurm}
CPUS=${SLURM_CLUSTER_CPUS:-8}
PORT=${SLURM_CLUSTER_PORT:-6817}
CTLD_PORT=$PORT SLURMD_PORT=$((PORT + 1)) DBD_PORT=$((PORT + 2)) DB_PORT=$((PORT + 3))
CLUSTER=shardlauncher
NODE=$(hostname -s)

ETC=$DIR/etc RUN=$DIR/run LOG=$DIR/log
CONF=$ETC/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_DATA=$DIR/mariadb
DB_SOCKET=$RUN/mariadb.sock

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin
          mariadb-server-core mariadb-client-core)
# Start order; stop goes in reverse (jobs' daemon first, munge last).
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

# Bounds for the waits, in seconds.
START_TIMEOUT=${SLURM_CLUSTER_START_TIMEOUT:-60}
STOP_TIMEOUT=10

log() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Clients started by this script must talk to our cluster, not /etc/slurm.
export SLURM_CONF=$CONF

# ---------------------------------------------------------------- install

packages_installed() {
  local status
  status=$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null) || return 1
  [[ $(grep -c '^install ok installed$' <<<"$status") -eq ${#PACKAGES[@]} ]]
}

cmd_install() {
  if packages_installed; then
    log "packages already installed"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "install needs root (apt-get)"
  log "installing ${PACKAGES[*]}"
  # Package postinst scripts would start the system-wide daemons (with
  # /etc configs we do not use); policy-rc.d exiting 101 forbids that. The
  # subshell's EXIT trap removes it again even when apt fails.
  (
    local policy=/usr/sbin/policy-rc.d backup=""
    if [[ -e $policy ]]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
    restore() { if [[ -n $backup ]]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi; }
    trap restore EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
  )
  packages_installed || die "packages still missing after apt-get install"
}

# ---------------------------------------------------------- PID handling

pidfile() { echo "$RUN/$1.pid"; }

# PID of a daemon we started, if it is still that daemon (guards against a
# stale PID file whose number the kernel has since reused).
daemon_pid() {
  local name=$1 file pid
  file=$(pidfile "$name")
  [[ -r $file ]] || return 1
  read -r pid <"$file" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  alive "$pid" || return 1
  echo "$pid"
}

running() { daemon_pid "$1" >/dev/null; }

# True while PID exists and is not a zombie. Daemons outlive the `start`
# that launched them, so their parent is PID 1, which may reap them only
# seconds after they exit; /proc/PID stays until then.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }          # fields after "(comm) "; field 1 is the state
  [[ ${stat%% *} != Z ]]
}

# Start NAME (a foreground-mode command) in its own session, detached from our
# stdio so callers that capture output (CI steps, subprocess) do not block on
# it, and record its PID. `setsid` execs in place here (a background child of
# a non-interactive shell is not a group leader), so $! is the daemon itself.
launch() {
  local name=$1; shift
  if running "$name"; then return 0; fi
  setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
  local pid=$! i
  echo "$pid" >"$(pidfile "$name")"
  # Until setsid has exec'd, /proc/PID/comm is not yet NAME and the daemon
  # would look dead to running(); wait (max 5 s) for the exec or an exit.
  for ((i = 0; i < 250; i++)); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] && return 0
    alive "$pid" || return 0
    sleep 0.02
  done
}

# Last lines of a daemon's logs, for error messages. The .out file (stderr)
# repeats most of the log, but alone holds errors from before the log opened.
show_logs() {
  local name=$1 f lines
  for f in "$LOG/$name.log:20" "$LOG/$name.out:8"; do
    lines=${f##*:} f=${f%:*}
    [[ -s $f ]] || continue
    echo "----- tail of $f" >&2
    tail -n "$lines" "$f" >&2
  done
}

# wait_for NAME WHAT CMD...: poll CMD until it succeeds; fail fast with NAME's
# logs if NAME died, or after START_TIMEOUT seconds.
wait_for() {
  local name=$1 what=$2; shift 2
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      show_logs "$name"
      die "$name exited while waiting for $what (logs above)"
    fi
    if ((SECONDS >= deadline)); then
      show_logs "$name"
      die "timed out after ${START_TIMEOUT}s waiting for $what (logs above)"
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------- config

# Regenerated on every start (cheap), so edits here apply on the next start.
write_config() {
  mkdir -p "$ETC" "$RUN" "$LOG" "$DIR/slurmctld" "$DIR/slurmd"

  cat >"$CONF" <<EOF
# Generated by scripts/slurm/cluster.sh; edits are overwritten on start.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root

# Private munge socket. cred_expire=10: the default 120 s makes a requeued
# job wait ~134 s before it may start again.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge

StateSaveLocation=$DIR/slurmctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$RUN/slurmctld.daemon.pid
SlurmdPidFile=$RUN/slurmd.daemon.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups in containers/CI: track processes by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true

# Cores are the only consumable (no --mem needed). The node claims CPUS
# CPUs whatever the hardware (config_overrides) so array tasks overlap.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides

# Schedule immediately: a trivial 8-task array takes ~12 s with defaults.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=1
# Cancelled jobs release the node after 5 s instead of 30 s.
KillWait=5
# A node that was down (e.g. across a stop/start) comes back by itself.
ReturnToService=2

# Accounting through slurmdbd, so sacct works (submitit relies on it to see
# cancelled jobs). slurmctld->slurmdbd ignores AuthInfo; the socket for that
# connection is passed via AccountingStoragePass.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET

NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=1-00:00:00 State=UP
EOF

  # slurmdbd has no -f: it reads slurmdbd.conf next to \$SLURM_CONF. It
  # holds the DB password, and slurmdbd refuses it unless mode 600.
  local dbpass
  dbpass=$(db_password)
  (umask 077; cat >"$ETC/slurmdbd.conf" <<EOF
# Generated by scripts/slurm/cluster.sh; edits are overwritten on start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.daemon.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$dbpass
StorageLoc=slurm_acct_db
EOF
  )
  chmod 600 "$ETC/slurmdbd.conf"
}

# Random password for the local DB user, made once and kept with the data.
db_password() {
  local file=$ETC/db.pass
  if [[ ! -s $file ]]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file")
  fi
  cat "$file"
}

# ---------------------------------------------------------------- daemons

start_munged() {
  # munged checks permissions: the socket's directory must be 0755 (clients
  # of any user reach it) and the key 0400, else "Socket is inaccessible".
  mkdir -p "$MUNGE_DIR"
  chmod 0755 "$MUNGE_DIR"
  if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    (umask 077; head -c 1024 /dev/urandom >"$MUNGE_DIR/munge.key")
  fi
  chmod 0400 "$MUNGE_DIR/munge.key"
  launch munged munged --foreground \
    --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$RUN/munged.daemon.pid" --seed-file="$MUNGE_DIR/munged.seed"
  # (In the foreground munged logs to stderr, i.e. log/munged.out.)
  wait_for munged "munge socket" munge --socket="$MUNGE_SOCKET" --no-input
}

db_sql() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot -e "$1"; }

start_mariadbd() {
  # Initialise the data directory on the first start only; build it aside
  # and rename so an interrupted init is redone rather than half-used.
  if [[ ! -d $DB_DATA/mysql ]]; then
    log "initialising MariaDB data directory"
    rm -rf "$DB_DATA.tmp"
    mariadb-install-db --no-defaults --user=root --datadir="$DB_DATA.tmp" \
      --auth-root-authentication-method=socket --skip-test-db \
      >"$LOG/mariadb-install.out" 2>&1 ||
      { tail -n 25 "$LOG/mariadb-install.out" >&2; die "mariadb-install-db failed"; }
    rm -rf "$DB_DATA"
    mv "$DB_DATA.tmp" "$DB_DATA"
  fi
  # TCP on 127.0.0.1 because slurmdbd cannot be given a socket path.
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$DB_DATA" \
    --socket="$DB_SOCKET" --pid-file="$RUN/mariadbd.daemon.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
    --log-error="$LOG/mariadbd.log" \
    --innodb-lock-wait-timeout=900 \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0
  # slurmdbd asks for lock-wait >= 900 (its note about the buffer pool size
  # is harmless); a throwaway CI database needs no per-commit fsync.
  # mariadb-admin is not in the -core packages, so a query is the ping.
  wait_for mariadbd "MariaDB" db_sql "SELECT 1"
  # Idempotent, and cheap enough to run on every start.
  local pass
  pass=$(db_password)
  db_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
          ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

cluster_registered() {
  local clusters
  clusters=$(timeout 10 sacctmgr -nP show cluster format=cluster) || return 1
  grep -qx "$CLUSTER" <<<"$clusters"
}

start_slurmdbd() {
  launch slurmdbd slurmdbd -D
  # sacctmgr answering is the readiness check; on the first start it also
  # registers the cluster (which creates the root account/association that
  # root's jobs are recorded under) before slurmctld first connects.
  wait_for slurmdbd "slurmdbd" timeout 10 sacctmgr -nP show cluster format=cluster
  if ! cluster_registered; then
    log "registering cluster '$CLUSTER' in accounting"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
}

ctld_up() { scontrol ping | grep -q 'is UP'; }
node_idle() { [[ $(sinfo -h -N -n "$NODE" -o %t) == idle ]]; }

start_slurmctld() {
  launch slurmctld slurmctld -D -f "$CONF"
  wait_for slurmctld "scontrol ping" ctld_up
}

start_slurmd() {
  launch slurmd slurmd -D -f "$CONF" -N "$NODE"
  wait_for slurmd "node $NODE to be idle" node_idle
}

all_up() {
  local d
  for d in "${DAEMONS[@]}"; do running "$d" || return 1; done
  ctld_up >/dev/null 2>&1
}

cmd_start() {
  [[ $EUID -eq 0 ]] || die "start needs root (daemons run as root)"
  if all_up; then
    log "already running ($DIR)"
    return 0
  fi
  packages_installed || cmd_install
  local t0=$SECONDS
  write_config
  # Each step starts its daemon only if it is not already running, so a
  # partly running cluster is completed rather than duplicated.
  start_munged
  start_mariadbd
  start_slurmdbd
  start_slurmctld
  start_slurmd
  log "cluster up in ~$((SECONDS - t0))s; use: eval \"\$($0 env)\""
}

# ---------------------------------------------------------------- stop

# SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_daemon() {
  local name=$1 pid i
  pid=$(daemon_pid "$name") || { rm -f "$(pidfile "$name")"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name ($pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$(pidfile "$name")"
}

# Cancel every job and wait (bounded) until none is left, so no job
# processes (slurmstepd and its children) outlive slurmd.
cancel_jobs() {
  running slurmctld || return 0
  local jobs i
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null) || return 0
  [[ -n $jobs ]] || return 0
  log "cancelling $(wc -w <<<"$jobs") job(s)"
  timeout 10 scancel --full $jobs 2>/dev/null || true
  for ((i = 0; i < (STOP_TIMEOUT + 5) * 10; i++)); do   # KillWait=5 + margin
    [[ -z $(timeout 5 squeue -h -o %i 2>/dev/null) ]] && return 0
    sleep 0.1
  done
  log "jobs still listed after cancel; stopping anyway"
}

cmd_stop() {
  [[ -d $RUN ]] || { log "not running ($DIR)"; return 0; }
  cancel_jobs
  local i
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_daemon "${DAEMONS[i]}"
  done
  log "stopped"
}

# ---------------------------------------------------------------- misc

cmd_env() { echo "export SLURM_CONF=$CONF"; }

cmd_status() {
  local d pid up=1
  for d in "${DAEMONS[@]}"; do
    if pid=$(daemon_pid "$d"); then
      printf '%-10s up (pid %s)\n' "$d" "$pid"
    else
      printf '%-10s down\n' "$d"; up=0
    fi
  done
  if running slurmctld; then
    timeout 10 scontrol ping || true
    timeout 10 sinfo || true
  fi
  ((up)) # exit status: 0 only when every daemon runs
}

usage() {
  cat >&2 <<EOF
usage: $0 install|start|stop|restart|status|env
  state in \${SLURM_CLUSTER_DIR:-/tmp/shard-launcher-slurm} (now: $DIR)
EOF
  exit 2
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) usage ;;
esac
