#!/usr/bin/env bash
# stop-cluster.sh -- stop the test cluster that start-cluster.sh started, and nothing else.
#
#   stop-cluster.sh [--purge]
#     --purge   afterwards delete the state (job ids, accounting DB, logs, generated configs),
#               so that the next start is a cold one
#
# Jobs are cancelled first, so that no job (and no slurmstepd) outlives slurmd. Then each daemon
# gets SIGTERM, by the PID recorded at start, and only if /proc/PID/comm still names that daemon:
# never by name (no pkill/killall), because on a shared machine other Slurm/MariaDB/munge
# processes may be someone else's. SIGKILL follows when a daemon outlives its grace period.
# Uses the same SLURM_CI_STATE_DIR / SLURM_CI_CONF_DIR as start-cluster.sh.
set -uo pipefail
SCRIPT_NAME=stop-cluster
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster-lib.sh
source "$HERE/cluster-lib.sh"

PURGE=0
for arg in "$@"; do
    case $arg in
    --purge) PURGE=1 ;;
    -h | --help)
        sed -n '2,12p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$arg' (usage: stop-cluster.sh [--purge])" ;;
    esac
done

if [[ ! -d $STATE_DIR ]]; then
    log "no state dir $STATE_DIR: nothing to stop"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons run as root/munge/mysql)"
take_lock

# 1. Cancel every job and wait until none runs. submitit jobs ignore SIGTERM, so this can take
#    KillWait (5 s) before Slurm's SIGKILL lands.
if alive slurmctld; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null | sort -u)
    if ((${#jobs[@]})); then
        log "cancelling ${#jobs[@]} job(s): ${jobs[*]}"
        scancel "${jobs[@]}" 2>/dev/null
        for ((i = 0; i < 150; i++)); do
            [[ -z $(squeue -h -t running,completing -o %A 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

# 2. Daemons, in reverse start order: nothing is left talking to a daemon that is already gone.
stop_daemon slurmd
stop_daemon slurmctld
stop_daemon slurmdbd
stop_daemon mariadbd 60 # InnoDB flushes on shutdown: give it longer before a SIGKILL
stop_daemon munged

# slurmstepd processes are not ours to kill (slurmd forked them), but one left behind means a job
# survived: say so instead of hiding it.
for comm in /proc/[0-9]*/comm; do
    [[ $(<"$comm") == slurmstepd ]] 2>/dev/null || continue
    pid=${comm#/proc/}
    pid=${pid%/comm}
    is_zombie "$pid" || log "WARNING: slurmstepd pid $pid is still running (a job outlived slurmd)"
done 2>/dev/null

if ((PURGE)); then
    if compgen -G "$PID_DIR/*.pid" >/dev/null; then
        die "not purging: $PID_DIR still has PID files of daemons that did not stop"
    fi
    if [[ ! -e $STATE_MARKER ]]; then
        die "not purging $STATE_DIR: it lacks $STATE_MARKER, so start-cluster.sh did not create it"
    fi
    # A conf dir outside the state dir may be shared (e.g. /etc/slurm): delete only our files.
    if [[ $CONF_DIR != "$STATE_DIR"/* ]]; then
        for f in "$CONF_DIR"/{slurm.conf,slurmdbd.conf,gres.conf}; do
            [[ -f $f ]] && grep -q "$GENERATED_TAG" "$f" && rm -f "$f"
        done
    fi
    rm -rf "$STATE_DIR"
    log "purged $STATE_DIR"
fi
log "done"
