#!/usr/bin/env bash
# One session on the GPU machine (MIG stays off, migctl read-only for MIG), outputs under $1:
# the read-only checks, the CLI latency against the bare pynvml floor, a PyTorch client in a
# soft device through `migctl run --share 25%`, and the MPS interference matrix through
# `migctl run --share`. MPS daemons are migctl's own (private pipe and log directories under
# a private state directory); any left at the end are quit. MIG mode is compared before/after.
#   usage: tools/real_gpu_session.sh OUTDIR   (PYTHONPATH must reach migctl and its deps)
set -uo pipefail
out=${1:?usage: tools/real_gpu_session.sh OUTDIR}
mkdir -p "$out"
export MIGCTL_READ_ONLY=1 MIGCTL_LOCAL=1 PYTHONUNBUFFERED=1
export MIGCTL_STATE_DIR=${MIGCTL_STATE_DIR:-/tmp/migctl-session-state}
unset MIGCTL_SIM MIGCTL_URL
py=${PYTHON:-python3}
mode() { nvidia-smi --query-gpu=index,name,mig.mode.current,mig.mode.pending,compute_mode --format=csv; }
mode > "$out/before.csv"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 | tr ' ' '-' | tr -cd 'A-Za-z0-9-')
mem=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | tr -d ' ')

timeout 150 tools/real_gpu_checks.sh "$out/commands-$gpu"; echo "checks exit $?"
timeout 120 $py -m pytest tests/fleet/test_hardware.py --with-gpu -m hardware -q \
  -p no:cacheprovider > "$out/fleet_hardware.txt" 2>&1; echo "fleet hardware exit $?"
timeout 120 $py -m bench.cli_latency --real --repeat 15 --out "$out" \
  --name "cli_latency-real-$gpu-node" > "$out/cli_latency.log" 2>&1; echo "cli_latency exit $?"
{ echo "\$ migctl run --share 25% -- $py tools/soft_client_probe.py"
  timeout 90 $py -m migctl run --share 25% -- $py tools/soft_client_probe.py; echo "exit $?"
  echo "\$ migctl run --share 50% --memory 16GiB -- $py tools/soft_client_probe.py"
  timeout 90 $py -m migctl run --share 50% --memory 16GiB -- $py tools/soft_client_probe.py
  echo "exit $?"; } > "$out/soft_run.txt" 2>&1; echo "soft run done"
timeout 260 $py -m bench.mps_interference --launcher migctl --migctl "$py -m migctl" \
  --gpu-memory-mib "$mem" --duration-s 4 --budget-s 200 --out "$out" \
  > "$out/mps_interference.log" 2>&1; echo "mps_interference exit $?"

for pipe in "$MIGCTL_STATE_DIR"/mps/*/pipe; do  # any MPS daemon of ours still up: quit it
  [ -S "$pipe/control" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$pipe" nvidia-cuda-mps-control
done
sleep 1; pgrep -a nvidia-cuda-mps > "$out/mps_left.txt" 2>&1 || echo "no MPS process left" > "$out/mps_left.txt"
mode > "$out/after.csv"
cmp -s "$out/before.csv" "$out/after.csv" && echo "MIG and compute mode unchanged" || echo "MODE CHANGED"
