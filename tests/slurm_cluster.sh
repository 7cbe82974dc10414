#!/usr/bin/env bash
# A whole single-node SLURM cluster in a folder, for tests/test_slurm.py: slurmctld + slurmd + slurmdbd
# (accounting, so `sacct` answers, as submitit expects) backed by MariaDB, all inside DIR. Debian packages:
#   apt-get install -y slurmctld slurmd slurm-client slurmdbd mariadb-server
# Runs as root (the daemons start jobs as the submitting user). Ports come from the environment
# (SLURMCTLD_PORT, SLURMD_PORT, SLURMDBD_PORT, DB_PORT) or defaults; nothing outside DIR is touched.
#   slurm_cluster.sh start DIR      then: export SLURM_CONF=DIR/slurm.conf; sbatch/sinfo/squeue/sacct work
#   slurm_cluster.sh stop DIR
# The node has at least 4 CPUs (config_overrides), whatever the machine has: small jobs run side by side.
# KillWait=30 (SLURM's default): a job gets 30 s between SLURM's SIGTERM (scancel, time limit) and its SIGKILL,
# room to end its run on a busy machine (at 10 s a loaded CI machine once SIGKILLed a job mid clean-up).
set -euo pipefail
cmd=${1:?start|stop}; dir=$(mkdir -p "${2:?DIR}" && cd "$2" && pwd)
host=$(hostname -s)
cpus=$(( $(nproc) < 4 ? 4 : $(nproc) ))  # at least 4 CPUs: a 4-job sweep runs at once on 2 cores
ctld_port=${SLURMCTLD_PORT:-16817}; d_port=${SLURMD_PORT:-16818}; dbd_port=${SLURMDBD_PORT:-16819}; db_port=${DB_PORT:-13306}
stop() {
  for p in slurmctld slurmd slurmdbd mariadb; do
    [[ -f $dir/$p.pid ]] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
}
if [[ $cmd == stop ]]; then stop; exit 0; fi
mkdir -p "$dir"/{state,spool,log,db}
mariadb-install-db --no-defaults --datadir="$dir/db" --user=root --auth-root-authentication-method=normal >"$dir/log/db-install.log" 2>&1
mariadbd --no-defaults --datadir="$dir/db" --socket="$dir/mysql.sock" --port="$db_port" --bind-address=127.0.0.1 \
  --user=root --pid-file="$dir/mariadb.pid" >"$dir/log/mariadb.log" 2>&1 &
for _ in $(seq 30); do mariadb --socket="$dir/mysql.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb --socket="$dir/mysql.sock" -uroot -e "create user if not exists 'slurm'@'127.0.0.1' identified by 'slurm';
  grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';"
cat >"$dir/slurmdbd.conf" <<C
AuthType=auth/none
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
C
chmod 600 "$dir/slurmdbd.conf"
cat >"$dir/slurm.conf" <<C
ClusterName=box
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/none
CredType=cred/none
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=30
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
NodeName=$host CPUs=$cpus RealMemory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 )) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
C
export SLURM_CONF=$dir/slurm.conf      # slurmdbd reads slurmdbd.conf beside it
slurmdbd
for _ in $(seq 30); do grep -q started "$dir/log/slurmdbd.log" 2>/dev/null && break; sleep 1; done
sacctmgr -i add cluster box >/dev/null
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %T | grep -q idle || { echo "slurm did not come up; logs in $dir/log" >&2; stop; exit 1; }
echo "export SLURM_CONF=$dir/slurm.conf"
