#!/usr/bin/env bash
# Stand up a one-node SLURM cluster on this machine, for trying and testing
# scale/slurm_shards.sbatch for real (tests/test_slurm.py). Needs root and Debian's packages:
#   apt-get install -y slurm-wlm munge && bash scale/local_slurm.sh
# One slurmctld and one slurmd on this host, no cgroups (proctrack/linuxproc, task/none: they
# work in containers), no accounting, no GPUs (submit with `sbatch --gres=none`). Rerunning it
# restarts the daemons. `bash scale/local_slurm.sh stop` stops them.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "error: scale/local_slurm.sh needs root (it starts munged, slurmctld and slurmd)" >&2; exit 2; }
command -v slurmctld >/dev/null || { echo "error: slurmctld not found; apt-get install -y slurm-wlm munge" >&2; exit 2; }

pkill -x slurmd 2>/dev/null || true
pkill -x slurmctld 2>/dev/null || true
if [ "${1:-}" = stop ]; then
    pkill -x munged 2>/dev/null || true
    exit 0
fi

# munge: the cluster's authentication
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

host=$(hostname -s)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
NodeName=${host} CPUs=$(nproc) RealMemory=${memory} State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
rm -f /etc/slurm/cgroup.conf  # no cgroups here

slurmctld -c   # -c: a clean start, no state of earlier runs
slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        echo "SLURM up: one node ($host, $(nproc) CPUs), partition 'local'"
        exit 0
    fi
    sleep 1
done
echo "error: the SLURM node did not become idle in 60 s; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
