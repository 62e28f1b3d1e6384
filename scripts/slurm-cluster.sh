#!/usr/bin/env bash
# Starts (or stops) a one-node SLURM cluster on this machine for the end-to-end SLURM test:
#   scripts/slurm-cluster.sh start    install slurmctld, slurmd, slurm-client and munge if missing,
#                                     write a minimal config, start munged, slurmctld and slurmd,
#                                     wait until the node is idle
#   scripts/slurm-cluster.sh stop     stop the daemons (by their pid files)
# State lives in /tmp/spyral-slurm (wiped at each start). Needs root; no systemd required.
set -euo pipefail

STATE=/tmp/spyral-slurm
CONF_DIR=/etc/slurm

stop() {
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munged.pid"; do
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    sleep 1
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
}

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "slurm-cluster: installing slurmctld slurmd slurm-client munge"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
    fi
    stop
    rm -rf "$STATE"
    mkdir -p "$STATE/ctld" "$STATE/d" "$CONF_DIR"
    # munge: key readable only by the munge user, runtime folder made by hand (no systemd).
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    su -s /bin/sh munge -c "munged --pid-file=$STATE/munged.pid" || munged --force --pid-file="$STATE/munged.pid"
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=spyraltest
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
    slurmctld -f "$CONF_DIR/slurm.conf"
    slurmd -f "$CONF_DIR/slurm.conf"
    for _ in $(seq 1 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qE '^idle'; then
            echo "slurm-cluster: node ${host} is idle"
            return 0
        fi
        sleep 0.5
    done
    echo "slurm-cluster: the node did not become idle; logs in $STATE" >&2
    sinfo >&2 || true
    tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
