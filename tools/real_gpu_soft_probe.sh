#!/usr/bin/env bash
# The soft-device part of a GPU session, alone: a PyTorch client in soft devices through
# `migctl run --share` (MIG read-only), and the fleet agent's read-only inventory test.
#   usage: tools/real_gpu_soft_probe.sh OUTDIR
set -uo pipefail
out=${1:?usage: tools/real_gpu_soft_probe.sh OUTDIR}
mkdir -p "$out"
export MIGCTL_READ_ONLY=1 MIGCTL_LOCAL=1 PYTHONUNBUFFERED=1
export MIGCTL_STATE_DIR=${MIGCTL_STATE_DIR:-/tmp/migctl-probe-state}
unset MIGCTL_SIM MIGCTL_URL
py=${PYTHON:-python3}
mode() { nvidia-smi --query-gpu=index,name,mig.mode.current,mig.mode.pending,compute_mode --format=csv; }
mode > "$out/before.csv"
for args in "--share 25%" "--share 50% --memory 16GiB" "--share 75%"; do
  echo "\$ migctl run $args -- $py tools/soft_client_probe.py"
  # shellcheck disable=SC2086
  timeout 90 $py -m migctl run $args -- $py tools/soft_client_probe.py; echo "exit $?"
done > "$out/soft_run.txt" 2>&1
echo "\$ migctl run --share 25% -- (no CUDA client)" >> "$out/soft_run.txt"
timeout 60 $py -m migctl run --share 25% -- true >> "$out/soft_run.txt" 2>&1; echo "exit $?" >> "$out/soft_run.txt"
timeout 120 $py -m pytest tests/fleet/test_hardware.py --with-gpu -m hardware -q \
  -p no:cacheprovider > "$out/fleet_hardware.txt" 2>&1; echo "fleet hardware exit $?"
for pipe in "$MIGCTL_STATE_DIR"/mps/*/pipe; do  # any MPS daemon of ours still up: quit it
  [ -S "$pipe/control" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$pipe" nvidia-cuda-mps-control
done
sleep 1; { pgrep -a nvidia-cuda-mps || echo "no MPS process left"; } > "$out/mps_left.txt" 2>&1
mode > "$out/after.csv"
cmp -s "$out/before.csv" "$out/after.csv" && echo "MIG and compute mode unchanged" || echo "MODE CHANGED"
