#!/usr/bin/env bash
# Every read-only check of migctl against the real GPUs of this machine, with outputs saved.
# Never changes MIG mode, never creates or destroys an instance: MIGCTL_READ_ONLY=1 makes
# migctl refuse every mutation before any driver call, and only read verbs are run.
#   usage: tools/real_gpu_checks.sh OUTDIR
set -uo pipefail
out=${1:?usage: tools/real_gpu_checks.sh OUTDIR}
mkdir -p "$out"
export MIGCTL_READ_ONLY=1 MIGCTL_LOCAL=1 PYTHONUNBUFFERED=1
unset MIGCTL_SIM MIGCTL_URL
py=${PYTHON:-python3}
run() { local name=$1; shift; echo "\$ $*" > "$out/$name.txt"; "$@" >> "$out/$name.txt" 2>&1; echo "exit $?" >> "$out/$name.txt"; }

nvidia-smi --query-gpu=name,driver_version,mig.mode.current,mig.mode.pending --format=csv > "$out/before.csv"
$py tools/hardware_check.py --out "$out" > "$out/hardware_check.log" 2>&1; echo "hardware_check exit $?"
$py -m pytest tests/hardware --with-gpu -q -p no:cacheprovider > "$out/pytest_hardware.txt" 2>&1; echo "pytest exit $?"
run list $py -m migctl list
run status $py -m migctl status
run profiles $py -m migctl profiles --placements
run catalog_check $py -m migctl catalog check
run metrics $py -m migctl metrics
run plan_split_3 $py -m migctl apply --split 3 --dry-run -i 0
run plan_demand $py -m migctl plan --demand 2x12GiB,1x35GiB -i 0
run refused_create $py -m migctl gi create 9 -i 0
run refused_mode $py -m migctl mode enable -i 0
nvidia-smi --query-gpu=name,driver_version,mig.mode.current,mig.mode.pending --format=csv > "$out/after.csv"
cmp -s "$out/before.csv" "$out/after.csv" && echo "MIG mode unchanged" || echo "MIG MODE CHANGED"
