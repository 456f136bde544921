#!/usr/bin/env bash
# `attnlab sweep --emit-jobs` on a real Slurm: a one-node cluster (munged, slurmctld, slurmd on
# 127.0.0.1, all state, logs and keys in a temporary directory), the emitted slurm.sh submitted
# with sbatch; then one array task cancelled while it runs, and the resubmission running only the
# missing configuration. Tiny synthetic trainings: about a minute in all.
#
#   tests/cluster/slurm_test.sh build/attnlab
#
# Exits 0 with "slurm_test: skipped: <why>" when Slurm or munge is not installed
# (.ci/setup-cluster installs them) or their daemons cannot start here; exits 1 with
# "slurm_test: FAILED: <what>" when the cluster runs but the sweep goes wrong. The daemons are
# stopped and the directory removed whatever happens.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/attnlab" >&2
  exit 2
fi
exe=$(realpath "$1")
say() { echo "slurm_test: $*"; }
skip() {
  say "skipped: $*"
  exit 0
}
fail() {
  say "FAILED: $*"
  exit 1
}
for tool in munged slurmctld slurmd sbatch squeue scancel scontrol sinfo; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (.ci/setup-cluster installs it)"
done

# munged refuses a socket directory that not everyone can enter: 0755, under /tmp.
work=$(mktemp -d /tmp/attnlab_slurm_test.XXXXXX)
chmod 755 "$work"
export SLURM_CONF=$work/slurm.conf
jobs_submitted=()

stop_pid_file() {  # stops the daemon whose pid is in $1: TERM, then KILL after 10 s
  local pid
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  set +e
  if [ ${#jobs_submitted[@]} -gt 0 ]; then
    scancel "${jobs_submitted[@]}" 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(squeue -h -j "$(IFS=,; echo "${jobs_submitted[*]}")" 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid_file "$work/slurmd.pid"
  stop_pid_file "$work/slurmctld.pid"
  # Runs of a cancelled or interrupted job whose slurmstepd is gone: ours, named by our directory.
  for pid in $(pgrep -f "$work/" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  stop_pid_file "$work/munge/munged.pid"
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# Two free TCP ports on the loopback address (slurmctld's and slurmd's).
port_in_use() { ss -Htan "sport = :$1" 2>/dev/null | grep -q .; }
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 20000))
    port_in_use "$port" || {
      echo "$port"
      return
    }
  done
  fail "no free TCP port"
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done

# munge: a fresh key, our own socket (the system's munged, if any, is not used).
mkdir -m 700 "$work/munge"
mkdir -m 755 "$work/socket"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
socket=$work/socket/munge.socket
munged --key-file="$work/munge/munge.key" --socket="$socket" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" ||
  skip "munged cannot start here: $(tail -n 2 "$work/munge/munged.log" 2>/dev/null)"

node=attnlab-test-node
cpus=$(nproc)
mkdir -p "$work/state" "$work/spool" "$work/log"
# No cgroups and no systemd here: processes tracked through /proc, tasks not bound to cores.
cat >"$SLURM_CONF" <<EOF
ClusterName=attnlabtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN
PartitionName=attnlab Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
daemon_logs() { tail -n 3 "$work/log/slurmctld.log" "$work/log/slurmd.log" 2>/dev/null; }
slurmctld -c -i || skip "slurmctld cannot start here: $(daemon_logs)"
slurmd -N "$node" || skip "slurmd cannot start here: $(daemon_logs)"
for _ in $(seq 100); do
  [ "$(sinfo -h -n "$node" -o %t 2>/dev/null)" = idle ] && break
  sleep 0.2
done
[ "$(sinfo -h -n "$node" -o %t 2>/dev/null)" = idle ] ||
  skip "the node did not become idle in 20 s: $(sinfo 2>&1) $(daemon_logs)"
say "cluster up: $(sinfo -h -o '%P %a %D %t %c' | tr -s ' ') ($(sinfo -V)), ports $ctld_port/$slurmd_port"

data="--synthetic-users 60 --synthetic-items 40 --synthetic-max-length 20 --maxlen 16 --dim 16"
data+=" --blocks 1 --batch 16"
grid="attention=softmax-fused,favor;seed=1,2"
emit() {  # emit DIR EPOCHS: the 2 x 2 grid's slurm.sh, a run EPOCHS epochs long
  "$exe" sweep --grid "$grid" --dir "$1" --args "$data --epochs $2 --eval-every $2" \
    --threads 1 --slurm-time 5:00 --slurm-mem 200M --slurm-partition attnlab --emit-jobs
}
collect() { "$exe" sweep --grid "$grid" --dir "$1" --collect; }
mtime() { stat -c %Y.%y "$1"; }

# 1. The whole grid: sbatch --wait, then every configuration collected.
started=$SECONDS
emit "$work/sweep" 2 >/dev/null
job=$(sbatch --parsable --wait "$work/sweep/slurm.sh" 2>"$work/sbatch.txt") || fail "sbatch --wait:\
 $(cat "$work/sbatch.txt" "$work"/sweep/runs/*/slurm-*.out "$work"/sweep/runs/*/output.txt \
  2>/dev/null | tail -n 20)"
jobs_submitted+=("$job")
for k in 0 1 2 3; do
  [ -f "$work/sweep/runs/$k/slurm-$job.out" ] ||
    fail "task $k has no log runs/$k/slurm-$job.out"
  [ -f "$work/sweep/runs/$k/result.csv" ] || fail "configuration $k has no result.csv"
done
table=$(collect "$work/sweep") || fail "sweep --collect: $table"
grep -q "^4 of 4 configurations finished" <<<"$table" || fail "not every configuration: $table"
say "1. sbatch --wait: job $job, 4 array tasks, $((SECONDS - started)) s; sweep --collect:"
echo "$table"

# 2. One task cancelled while it runs; the resubmission runs only the missing configuration.
started=$SECONDS
emit "$work/cancel" 300 >/dev/null  # runs of a few seconds: time to cancel one mid-run
job=$(sbatch --parsable "$work/cancel/slurm.sh" 2>"$work/sbatch.txt") ||
  fail "sbatch: $(cat "$work/sbatch.txt")"
jobs_submitted+=("$job")
victim=1
for _ in $(seq 300); do
  [ "$(squeue -h -j "${job}_$victim" -o %T 2>/dev/null)" = RUNNING ] &&
    [ -f "$work/cancel/runs/$victim/output.txt" ] && break
  sleep 0.1
done
[ "$(squeue -h -j "${job}_$victim" -o %T)" = RUNNING ] || fail "task $victim never ran"
scancel "${job}_$victim"
say "2. job $job: task $victim cancelled while running"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 0.2
done
[ -z "$(squeue -h -j "$job")" ] || fail "job $job did not end in 120 s"
[ ! -f "$work/cancel/runs/$victim/result.csv" ] ||
  fail "configuration $victim finished before its cancel took effect (runs too short)"
grep -q CANCELLED "$work/cancel/runs/$victim/slurm-$job.out" ||
  fail "no CANCELLED in task $victim's log: $(cat "$work/cancel/runs/$victim/slurm-$job.out")"
say "   its log: $(grep CANCELLED "$work/cancel/runs/$victim/slurm-$job.out")"
partial=$(collect "$work/cancel")
grep -q "^3 of 4 configurations finished" <<<"$partial" || fail "after the cancel: $partial"
say "   after the cancel: $(head -n 1 <<<"$partial")"
declare -A before
for k in 0 2 3; do before[$k]=$(mtime "$work/cancel/runs/$k/result.csv"); done
job2=$(sbatch --parsable --wait "$work/cancel/slurm.sh" 2>"$work/sbatch.txt") ||
  fail "the resubmission failed: $(cat "$work/sbatch.txt" "$work"/cancel/runs/*/slurm-*.out)"
jobs_submitted+=("$job2")
for k in 0 2 3; do
  [ "$(mtime "$work/cancel/runs/$k/result.csv")" = "${before[$k]}" ] ||
    fail "configuration $k ran again (its result.csv changed)"
  grep -q "configuration $k already finished: skipped" "$work/cancel/runs/$k/slurm-$job2.out" ||
    fail "task $k of the resubmission did not skip: $(cat "$work/cancel/runs/$k/slurm-$job2.out")"
done
[ -f "$work/cancel/runs/$victim/result.csv" ] || fail "the resubmission did not finish $victim"
if grep -q "already finished" "$work/cancel/runs/$victim/slurm-$job2.out"; then
  fail "the resubmission skipped configuration $victim"
fi
table=$(collect "$work/cancel") || fail "sweep --collect: $table"
grep -q "^4 of 4 configurations finished" <<<"$table" || fail "after resubmitting: $table"
say "   resubmitted as job $job2 (sbatch --wait): only configuration $victim ran;" \
  "$((SECONDS - started)) s for both jobs"
say "   0, 2, 3: result.csv untouched, logs say '$(cat "$work/cancel/runs/0/slurm-$job2.out")'"
say "   sweep --collect:"
echo "$table"
say "passed"
