#!/usr/bin/env bash
# The sweep's SLURM path against a real single-node SLURM (slurm-wlm from Debian, munge), started
# here as root without systemd and stopped by its PIDs on exit:
#   1. `sweep convergence --slurm 4 --submit` and `sweep solver_table --slurm 3 --submit`: the
#      merge job's CSV equals a single-machine run's byte for byte;
#   2. an array with one task cancelled: the merge job is cancelled (afterok with
#      --kill-on-invalid-dep) and `sweep merge` refuses, naming the missing shard.
# Usage: tests/slurm/test.sh PATH/TO/scoresde. Exits non-zero with a message on any failure,
# including when the packages cannot be installed: it never passes without a cluster.
set -euo pipefail
BIN=$(realpath "$1")
fail() { echo "slurm test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root to install and start slurmctld, slurmd and munged"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge; } >/tmp/scoresde-slurm-apt.log 2>&1 \
    || fail "could not install slurmctld slurmd slurm-client munge from Debian (log: /tmp/scoresde-slurm-apt.log)"
fi

WORK=$(mktemp -d /tmp/scoresde-slurm.XXXXXX)
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
[ "$MEM" -gt 512 ] || MEM=512
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
CONF="$WORK/slurm.conf"
cat > "$CONF" <<CONF
ClusterName=scoresde
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$CONF"

MUNGE_STARTED=
stop() {
  for f in "$WORK/slurmd.pid" "$WORK/slurmctld.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  if [ -n "$MUNGE_STARTED" ] && [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
  sleep 1
}
trap stop EXIT

# munge: a key from the package, a run directory nothing else creates without systemd.
[ -f /etc/munge/munge.key ] || fail "/etc/munge/munge.key is missing (the munge package creates it)"
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
  MUNGE_STARTED=1
  sleep 1
fi
munge -n | unmunge >/dev/null || fail "munge does not authenticate"

slurmctld -c -f "$CONF" || fail "slurmctld did not start (log $WORK/log/slurmctld.log)"
slurmd -f "$CONF" || fail "slurmd did not start (log $WORK/log/slurmd.log)"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || fail "slurmctld does not answer"
for _ in $(seq 150); do [ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -n "$HOST" -o %T)" = idle ] || fail "node $HOST is not idle: $(sinfo -h -n "$HOST" -o %T)"

# Waits until job $1 has left the queue (finished, failed or cancelled).
wait_gone() {
  for _ in $(seq 900); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  fail "job $1 still queued after 3 minutes: $(squeue -j "$1")"
}

run_kind() {  # kind, tasks
  local kind=$1 tasks=$2
  "$BIN" sweep "$kind" --out-dir "$WORK/single-$kind" --quiet
  local line ids
  line=$("$BIN" sweep "$kind" --out-dir "$WORK/array-$kind" --slurm "$tasks" --submit --sbatch-arg=--cpus-per-task=1)
  ids=$(echo "$line" | grep -o '[0-9]\+' | head -4)
  local array merge
  array=$(echo "$line" | sed -n 's/^array job \([0-9]*\).*/\1/p')
  merge=$(echo "$line" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
  [ -n "$array" ] && [ -n "$merge" ] || fail "$kind: no job ids in '$line' ($ids)"
  wait_gone "$array"; wait_gone "$merge"
  [ -f "$WORK/array-$kind/$kind.csv" ] || fail "$kind: the merge job wrote no CSV ($(cat "$WORK/array-$kind/$kind.merge.out" 2>/dev/null))"
  cmp "$WORK/single-$kind/$kind.csv" "$WORK/array-$kind/$kind.csv" || fail "$kind: merged CSV differs from the single run's"
  echo "slurm test: $kind: $tasks-task array $array + merge $merge: CSV byte-identical to the single run"
}
run_kind convergence 4
run_kind solver_table 3

# A failed task: hold the array, cancel task 2, release the rest.
out="$WORK/failed"
line=$("$BIN" sweep convergence --out-dir "$out" --slurm 4 --submit --sbatch-arg=--hold)
array=$(echo "$line" | sed -n 's/^array job \([0-9]*\).*/\1/p')
merge=$(echo "$line" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
scancel "${array}_2"
scontrol release "$array"
wait_gone "$array"; wait_gone "$merge"
[ ! -f "$out/convergence.csv" ] || fail "the merge ran although task 2 was cancelled"
if msg=$("$BIN" sweep merge convergence --out-dir "$out" --quiet 2>&1); then fail "merge accepted a missing shard"; fi
echo "$msg" | grep -q "shard 2 is missing" || fail "merge did not name the missing shard: $msg"
echo "slurm test: a cancelled task: the merge job was cancelled and sweep merge says: $msg"
