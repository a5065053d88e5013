#!/usr/bin/env bash
# start-cluster.sh -- start this project's single-node Slurm test cluster (Debian 12, Slurm 22.05),
# without systemd:  munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd.
#
# Idempotent: a daemon whose recorded PID is alive is left alone, so a second run takes ~0.5 s.
# If the rendered configs changed since the daemons started, the daemons that read them restart.
# Every daemon is started by us, in its own session, and its PID goes to $STATE_DIR/pids/NAME.pid;
# stop-cluster.sh stops exactly those PIDs and nothing else.
#
# Knobs (environment variables), defaults in []:
#   SLURM_CI_STATE_DIR   job state, spool, logs, pids, MariaDB data   [/var/lib/judgelm-slurm]
#   SLURM_CI_CONF_DIR    where slurm.conf, slurmdbd.conf, gres.conf go [$SLURM_CI_STATE_DIR/etc]
#   SLURM_CI_INSTALL     1: apt-get install missing Debian packages; 0: fail instead   [1]
#   SLURM_CI_CPUS        CPUs declared for the node; may exceed the real count         [8]
#   SLURM_CI_MEM_MB      RealMemory declared for the node                             [MemTotal]
#   SLURM_CI_GPUS        fake GPUs (gres/gpu backed by /dev/null); 0 = a CPU-only node [2]
#   SLURM_CI_PARTITION   partition name                                               [debug]
#   SLURM_CI_CLUSTER     ClusterName                                                  [judgelm]
#   SLURM_CI_NODE        node name; need not resolve (NodeAddr is 127.0.0.1)         [hostname -s]
#   SLURM_CI_PORT_BASE   slurmctld port; slurmd uses +1, slurmdbd +2                  [6817]
#   SLURM_CI_DB_PORT     port of the private MariaDB on 127.0.0.1                     [3307]
#   SLURM_CI_TIMEOUT     seconds to wait for each daemon to become ready              [60]
#
# Afterwards:  source "$SLURM_CI_STATE_DIR/env"   (exports SLURM_CONF), then sinfo / sbatch / sacct.
set -Eeuo pipefail
SCRIPT_NAME=start-cluster
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster-lib.sh
source "$HERE/cluster-lib.sh"
trap 'echo "[$SCRIPT_NAME] FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

INSTALL="${SLURM_CI_INSTALL:-1}"
CPUS="${SLURM_CI_CPUS:-8}"
MEM_MB="${SLURM_CI_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)}"
GPUS="${SLURM_CI_GPUS:-2}"
PARTITION="${SLURM_CI_PARTITION:-debug}"
CLUSTER="${SLURM_CI_CLUSTER:-judgelm}"
CTLD_HOST="$(hostname -s)"
NODE="${SLURM_CI_NODE:-$CTLD_HOST}"
CTLD_PORT="${SLURM_CI_PORT_BASE:-6817}"
SLURMD_PORT=$((CTLD_PORT + 1))
DBD_PORT=$((CTLD_PORT + 2))
DB_PORT="${SLURM_CI_DB_PORT:-3307}"
TIMEOUT="${SLURM_CI_TIMEOUT:-60}"
# The database only listens on 127.0.0.1 and holds nothing but test accounting: a fixed password
# is fine and keeps restarts with an existing datadir trivial.
DB_USER=slurm
DB_PASS=judgelm-slurm-ci
DB_NAME=slurm_acct_db
MYSQL_DIR="$STATE_DIR/mysql"
MYSQL_RUN="$STATE_DIR/mysql-run"
MYSQL_SOCK="$MYSQL_RUN/mysqld.sock"
# Daemons get a clean, fixed environment: the cluster must behave the same whether a shell, CI or
# a pytest process (with its PYTHONPATH, virtualenv, ...) started it.
DAEMON_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SLURM_CONF="$SLURM_CONF")

[[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "SLURM_CI_CPUS must be a positive integer, got '$CPUS'"
[[ $GPUS =~ ^[0-9]+$ ]] || die "SLURM_CI_GPUS must be a non-negative integer, got '$GPUS'"
[[ $(uname -s) == Linux ]] || die "needs Linux"
[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts munged/slurmd)"

# ------------------------------------------------------------------------------------- helpers

# launch NAME CMD...: start CMD, which must end up exec'ing the daemon NAME in the foreground.
launch() {
    local name=$1
    shift
    # In a non-interactive shell a background job is not a process-group leader, so setsid(1)
    # can call setsid() itself and exec: $! is the daemon's own PID, no pid file race.
    setsid "${DAEMON_ENV[@]}" "$@" >>"$LOG_DIR/$name.out" 2>&1 </dev/null 9>&- &
    echo $! >"$PID_DIR/$name.pid"
    log "started $name (pid $!)"
}

# wait_for [-p NAME] WHAT CMD...: poll CMD until it succeeds. With -p, give up at once (and show
# the log) when the daemon NAME that we just launched has died, instead of waiting for the timeout.
wait_for() {
    local proc=""
    if [[ $1 == -p ]]; then
        proc=$2
        shift 2
    fi
    local what=$1
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $proc ]] && ! started "$proc"; then
            tail -n 25 "$LOG_DIR/$proc.out" "$LOG_DIR/$proc.log" >&2 2>/dev/null || true
            die "$proc died during startup (logs above, all logs in $LOG_DIR)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 25 "$LOG_DIR"/*.log >&2 2>/dev/null || true
            die "$what not ready after ${TIMEOUT}s (logs above)"
        fi
        sleep 0.2
    done
    log "$what ready"
}

# port_listening PORT: something already LISTENs on TCP PORT. Checked before launching a daemon,
# because otherwise the daemon dies with a bind error that only shows up in its log.
port_listening() {
    local hex
    printf -v hex '%04X' "$1"
    awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
                      END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
require_free_port() {
    ! port_listening "$1" || die "TCP port $1 (for $2) is already in use by another process; set $3"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# render TEMPLATE DEST MODE: replace every @VAR@ in TEMPLATE with the value of the shell variable
# VAR. A placeholder without a variable is an error, so a typo in a template cannot slip through.
render() {
    local src="$HERE/conf/$1" dest=$2 mode=$3 var args=()
    for var in $(grep -o '@[A-Z_]*@' "$src" | sort -u | tr -d @); do
        [[ -v $var ]] || die "$src uses @$var@, which start-cluster.sh does not set"
        args+=(-e "s|@$var@|$(sed_escape "${!var}")|g")
    done
    sed "${args[@]}" "$src" >"$dest.tmp"
    chmod "$mode" "$dest.tmp"
    mv -f "$dest.tmp" "$dest"
}

# checksum FILE...: one short hash over the files that exist (gres.conf only does with GPUs)
checksum() {
    local f
    for f in "$@"; do
        if [[ -f $f ]]; then cat "$f"; fi
    done | sha256sum | cut -c1-16
}

# ------------------------------------------------------------------------------------ packages
PKGS=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $INSTALL == 1 ]] || die "missing Debian packages: ${missing[*]} (SLURM_CI_INSTALL=0)"
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: skips libpmix & co (~100 MB) that a single-node test cluster never uses.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "packages installed"
fi

# ------------------------------------------------------------------------------ state + configs
mkdir -p "$STATE_DIR"
touch "$STATE_MARKER"
take_lock
mkdir -p "$STATE_DIR"/{slurmctld,slurmd} "$PID_DIR" "$LOG_DIR" "$RUN_DIR" "$CONF_DIR"

ACCT_TRES_LINE=""
GRES_TYPES_LINE="# no GresTypes: started with SLURM_CI_GPUS=0"
NODE_GRES=""
if ((GPUS > 0)); then
    GRES_TYPES_LINE="GresTypes=gpu"
    # lets sacct's AllocTRES show gres/gpu=N, so tests can check what a job really got
    ACCT_TRES_LINE="AccountingStorageTRES=gres/gpu"
    NODE_GRES="Gres=gpu:$GPUS"
    rm -rf "$STATE_DIR/fake-gpus"
    mkdir -p "$STATE_DIR/fake-gpus"
    for ((i = 0; i < GPUS; i++)); do ln -s /dev/null "$STATE_DIR/fake-gpus/gpu$i"; done
    GPU_FILES="$STATE_DIR/fake-gpus/gpu[0-$((GPUS - 1))]"
    ((GPUS > 1)) || GPU_FILES="$STATE_DIR/fake-gpus/gpu0"
    render gres.conf.in "$CONF_DIR/gres.conf" 644
elif [[ -f $CONF_DIR/gres.conf ]] && grep -q "$GENERATED_TAG" "$CONF_DIR/gres.conf"; then
    rm -f "$CONF_DIR/gres.conf"
fi
render slurm.conf.in "$CONF_DIR/slurm.conf" 644
# slurmdbd refuses a slurmdbd.conf that others can read (it holds the DB password)
render slurmdbd.conf.in "$CONF_DIR/slurmdbd.conf" 600

# A running daemon does not re-read its config: if the knobs changed since it started, restart it.
SLURM_SUM=$(checksum "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf")
DBD_SUM=$(checksum "$CONF_DIR/slurmdbd.conf")
if [[ -s $RUN_DIR/slurm.conf.sum && $(<"$RUN_DIR/slurm.conf.sum") != "$SLURM_SUM" ]]; then
    log "slurm.conf/gres.conf changed since the daemons started: restarting slurmd + slurmctld"
    stop_daemon slurmd
    stop_daemon slurmctld
fi
if [[ -s $RUN_DIR/slurmdbd.conf.sum && $(<"$RUN_DIR/slurmdbd.conf.sum") != "$DBD_SUM" ]]; then
    log "slurmdbd.conf changed since slurmdbd started: restarting it"
    stop_daemon slurmdbd
fi
log "configs in $CONF_DIR: node $NODE, CPUs=$CPUS, RealMemory=${MEM_MB}M, fake GPUs=$GPUS"

# ----------------------------------------------------------------------------------------- munge
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
if alive munged; then
    log "munged already running (pid $(recorded_pid munged))"
elif munge_ok 2>/dev/null; then
    # All clients and daemons use the default socket; a munged we did not start works just as well
    # (and we must not fight it for the socket).
    log "using an already running munged that we did not start"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    # munged refuses to run unless the key is munge-owned 0400/0600 and its dirs are not writable
    # by others.
    chown -R munge:munge /etc/munge
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    chmod 700 /var/log/munge
    # setpriv (not runuser/su, which fork) keeps $! equal to munged's PID.
    launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for -p munged munged munge_ok
fi

# ------------------------------------------------------------------------------- MariaDB, slurmdbd
# A private MariaDB (own datadir, socket and port) so that a system MariaDB can neither interfere
# with nor be touched by the test cluster.
db() { mariadb --no-defaults --socket="$MYSQL_SOCK" -uroot "$@"; }
if alive mariadbd; then
    log "mariadbd already running (pid $(recorded_pid mariadbd))"
else
    require_free_port "$DB_PORT" MariaDB SLURM_CI_DB_PORT
    if [[ ! -d $MYSQL_DIR/mysql ]]; then
        log "initialising the MariaDB datadir (the slowest step of a cold start)"
        mkdir -p "$MYSQL_DIR"
        chown mysql:mysql "$MYSQL_DIR"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DIR" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install-db.out" 2>&1 ||
            {
                cat "$LOG_DIR/mariadb-install-db.out" >&2
                die "mariadb-install-db failed"
            }
    fi
    mkdir -p "$MYSQL_RUN"
    chown mysql:mysql "$MYSQL_RUN"
    launch mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MYSQL_DIR" \
        --socket="$MYSQL_SOCK" --pid-file="$MYSQL_RUN/mariadbd.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$LOG_DIR/mariadbd.log" \
        --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
        --skip-log-bin
    wait_for -p mariadbd mariadbd db -e 'SELECT 1'
fi

if alive slurmdbd; then
    log "slurmdbd already running (pid $(recorded_pid slurmdbd))"
else
    require_free_port "$DBD_PORT" slurmdbd SLURM_CI_PORT_BASE
    # Idempotent, and needed on every slurmdbd start: cheap, and a reused datadir might predate it.
    db -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
           CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
           CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
           GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
           GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';"
    launch slurmdbd /usr/sbin/slurmdbd -D
    wait_for -p slurmdbd slurmdbd sacctmgr -n -P show cluster format=cluster
    # slurmctld would register the cluster itself on its first start; doing it here, before
    # slurmctld runs, makes the first jobs' accounting deterministic.
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
        log "cluster '$CLUSTER' added to the accounting database"
    fi
fi
echo "$DBD_SUM" >"$RUN_DIR/slurmdbd.conf.sum"

# ---------------------------------------------------------------------------- slurmctld, slurmd
if alive slurmctld; then
    log "slurmctld already running (pid $(recorded_pid slurmctld))"
else
    require_free_port "$CTLD_PORT" slurmctld SLURM_CI_PORT_BASE
    # -i: start even if a state file is unreadable (e.g. left half-written by a SIGKILL)
    launch slurmctld /usr/sbin/slurmctld -D -i
    wait_for -p slurmctld slurmctld bash -c 'scontrol ping | grep -q "is UP"'
fi
if alive slurmd; then
    log "slurmd already running (pid $(recorded_pid slurmd))"
else
    require_free_port "$SLURMD_PORT" slurmd SLURM_CI_PORT_BASE
    launch slurmd /usr/sbin/slurmd -D -N "$NODE"
fi

# node_ready: slurmd has registered and the node takes jobs. A node left DOWN/DRAINED by an
# unclean stop (e.g. "Kill task failed") is resumed rather than waited for.
node_ready() {
    local st
    st=$(sinfo -h -n "$NODE" -o %t 2>/dev/null) || return 1
    case $st in
    idle | mix | alloc | comp) return 0 ;;
    *'*'*) return 1 ;; # not responding (yet): slurmd has not registered
    down | drain | drng | inval) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    return 1
}
wait_for -p slurmd "node $NODE" node_ready
echo "$SLURM_SUM" >"$RUN_DIR/slurm.conf.sum"

cat >"$STATE_DIR/env.tmp" <<EOF
# $GENERATED_TAG. Source it to use this cluster from a shell.
export SLURM_CONF=$SLURM_CONF
EOF
mv -f "$STATE_DIR/env.tmp" "$STATE_DIR/env"
log "cluster '$CLUSTER' up: partition '$PARTITION', node $NODE. Use it with: source $STATE_DIR/env"
