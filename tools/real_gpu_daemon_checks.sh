#!/usr/bin/env bash
# The read verbs through a migctl daemon on the real GPUs of this machine, next to the same
# verbs run directly: outputs must be identical. Read-only: the daemon runs with
# MIGCTL_READ_ONLY=1 (its backend refuses every change before any driver call), on a private
# socket and state directory, with no layout to keep; only read verbs are run.
#   usage: tools/real_gpu_daemon_checks.sh OUTDIR
set -uo pipefail
out=${1:?usage: tools/real_gpu_daemon_checks.sh OUTDIR}
mkdir -p "$out"
export MIGCTL_READ_ONLY=1 PYTHONUNBUFFERED=1
unset MIGCTL_SIM MIGCTL_URL MIGCTL_LOCAL
py=${PYTHON:-python3}
state=$(mktemp -d)
sock="$state/migctl.sock"

nvidia-smi --query-gpu=name,driver_version,mig.mode.current,mig.mode.pending --format=csv > "$out/before.csv"
$py -m migctl serve --socket "$sock" --state-dir "$state/state" --lease-db "$state/leases.db" \
    --admin-group root > "$out/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
same=0; differ=0
for verb in "list" "status" "profiles" "profiles --placements" "gi list" "ci list" "export" "catalog check" \
            "-o json list" "-o json profiles"; do
    name=$(echo "$verb" | tr ' -' '__')
    MIGCTL_URL="unix://$sock" $py -m migctl $verb > "$out/daemon_$name.txt" 2>&1; d=$?
    MIGCTL_LOCAL=1 $py -m migctl $verb > "$out/local_$name.txt" 2>&1; l=$?
    skip=0; [ "$verb" = status ] && skip=1  # status starts by naming where it read the GPUs
    if [ "$d" = "$l" ] && cmp -s <(tail -n +$((skip + 1)) "$out/daemon_$name.txt") \
                                 <(tail -n +$((skip + 1)) "$out/local_$name.txt"); then
        echo "same   migctl $verb (exit $d)"; same=$((same + 1))
    else
        echo "DIFFER migctl $verb (daemon exit $d, local exit $l)"; differ=$((differ + 1))
    fi
done
MIGCTL_URL="unix://$sock" $py -m migctl gi create 9 -i 0 > "$out/daemon_refused_create.txt" 2>&1
echo "gi create through the daemon: exit $? (7 expected)"
if [ -n "${BENCH_OUT:-}" ]; then
    $py -m bench.cli_latency --real --via "unix://$sock" --out "$BENCH_OUT" --repeat "${REPEAT:-20}" \
        --name "${BENCH_NAME:-cli_latency-real-daemon}" > /dev/null && echo "latency written"
fi
kill "$daemon"; wait "$daemon" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,mig.mode.current,mig.mode.pending --format=csv > "$out/after.csv"
cmp -s "$out/before.csv" "$out/after.csv" && echo "MIG mode unchanged" || echo "MIG MODE CHANGED"
echo "$same same, $differ differ"
