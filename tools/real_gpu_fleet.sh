#!/usr/bin/env bash
# The fleet on the real GPU machine, MIG read-only: a Dask scheduler with the controller, this host's agent with a
# soft-share worker per GPU (MIG off there), one PyTorch task per worker, `fleet status`; every
# process and MPS daemon stopped at the end; MIG and compute mode compared before/after.
#   usage: tools/real_gpu_fleet.sh OUTDIR
set -uo pipefail
out=${1:?usage: tools/real_gpu_fleet.sh OUTDIR}
mkdir -p "$out"
export MIGCTL_READ_ONLY=1 MIGCTL_LOCAL=1 PYTHONUNBUFFERED=1
export MIGCTL_STATE_DIR=${MIGCTL_STATE_DIR:-/tmp/migctl-fleet-state}
unset MIGCTL_SIM MIGCTL_URL
py=${PYTHON:-python3}
mode() { nvidia-smi --query-gpu=index,name,mig.mode.current,mig.mode.pending,compute_mode --format=csv; }
mode > "$out/before.csv"
gpus=$(nvidia-smi -L | grep -c '^GPU')
sched=tcp://127.0.0.1:8786
setsid $py -m distributed.cli.dask_scheduler --host 127.0.0.1 --port 8786 --preload migctl.fleet.plugin \
  --dashboard-address 127.0.0.1:8787 > "$out/scheduler.log" 2>&1 &
spid=$!
sleep 4
setsid $py -m migctl fleet agent --scheduler $sched --soft-share 100 --heartbeat 0.5 \
  > "$out/agent.log" 2>&1 &
apid=$!
timeout 200 $py tools/fleet_real_probe.py $sched "$gpus" > "$out/probe.json" 2> "$out/probe.err"
echo "probe exit $?"
timeout 30 $py -m migctl fleet status --scheduler $sched > "$out/fleet_status.txt" 2>&1
timeout 30 $py -m migctl -o json fleet status --scheduler $sched > "$out/fleet_status.json" 2>&1
timeout 30 $py -m migctl -o json list > "$out/list.json" 2>&1
kill -TERM $apid; for _ in $(seq 30); do kill -0 $apid 2>/dev/null || break; sleep 1; done
kill -TERM -- -$apid 2>/dev/null; kill -TERM -- -$spid 2>/dev/null; sleep 2
kill -KILL -- -$apid -$spid 2>/dev/null
for pipe in "$MIGCTL_STATE_DIR"/mps/*/pipe; do
  [ -S "$pipe/control" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$pipe" nvidia-cuda-mps-control
done
sleep 1
{ pgrep -af "dask|nvidia-cuda-mps|migctl" | grep -v pgrep || echo "no process left"; } > "$out/left.txt"
mode > "$out/after.csv"
cmp -s "$out/before.csv" "$out/after.csv" && echo "MIG and compute mode unchanged" || echo "MODE CHANGED"
