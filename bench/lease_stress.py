"""Lease store stress benchmark: many processes acquire and release MIG device leases at once.

Why this exists: the lease store promises that no MIG device is ever granted twice and that no
lease leaks, under real multi-process contention, at a useful speed. This script measures it
and writes ``bench/results/lease_stress.md`` (machine, exact command, results). Run it as::

    PYTHONPATH=src python bench/lease_stress.py --processes 16 --cycles 200 --devices 16 4

Each worker process loops ``acquire (wait) -> hold -> release``. Double grants are counted
three independent ways: an ``O_EXCL`` marker file per device held while leased (a second holder
fails to create it), overlapping monotonic hold intervals in the workers' logs, and
overlapping [created_at, ended_at] intervals in the store's own history. Leaked leases are the
rows still active after every worker has exited, counted with plain SQL before anything reaps.
Only this script imports this module; it uses ``migctl.leases`` and the standard library.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migctl.leases import Backoff, DeviceCandidate, DeviceRequest, LeaseOwner, LeaseStore

RESULTS = Path(__file__).parent / "results" / "lease_stress.md"


@dataclass(frozen=True)
class Scenario:
    processes: int
    cycles: int
    devices: int
    hold_ms: float
    db_path: Path
    work_dir: Path


def inventory(count: int) -> list[DeviceCandidate]:
    """``count`` 1g.10gb devices, 7 per GPU like an H100 in 7x 1g.10gb."""
    return [
        DeviceCandidate(f"MIG-bench-{n:03d}", n // 7, 7 + n % 7, 0, "1g.10gb", 9_984, 16)
        for n in range(count)
    ]


def worker(scenario: Scenario, index: int, start: Any) -> None:
    """One process: ``cycles`` times acquire -> hold -> release; writes its log as JSON."""
    store = LeaseStore(scenario.db_path, backoff=Backoff(initial_s=0.002, max_s=0.05))
    owner = LeaseOwner(user=f"bench{index}", uid=10_000 + index, host=os.uname().nodename,
                       job="lease-stress", pid=os.getpid())  # fmt: skip
    devices, request = inventory(scenario.devices), DeviceRequest(profile="1g.10gb")
    log: list[dict[str, Any]] = []
    errors: list[str] = []
    start.wait()
    for _ in range(scenario.cycles):
        try:
            log.append(cycle(store, owner, devices, request, scenario))
        except Exception as exc:  # reported, never hidden: any error fails the run
            errors.append(f"{type(exc).__name__}: {exc}")
    out = {"log": log, "errors": errors}
    (scenario.work_dir / f"worker-{index}.json").write_text(json.dumps(out))


def cycle(
    store: LeaseStore,
    owner: LeaseOwner,
    devices: list[DeviceCandidate],
    request: DeviceRequest,
    scenario: Scenario,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    lease = store.acquire(request, owner, devices, wait_seconds=300)
    acquire_s = time.perf_counter() - t0
    marker = scenario.work_dir / lease.uuid
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        fd = -1
    start_ns = time.monotonic_ns()
    time.sleep(random.uniform(0, scenario.hold_ms / 1000))
    end_ns = time.monotonic_ns()
    if fd >= 0:
        os.close(fd)
        marker.unlink()
    t1 = time.perf_counter()
    store.release(lease.lease_id, user=owner.user)
    release_s = time.perf_counter() - t1
    return {"uuid": lease.uuid, "acquire_s": acquire_s, "release_s": release_s,
            "start_ns": start_ns, "end_ns": end_ns, "marker_clash": fd < 0}  # fmt: skip


def run_scenario(scenario: Scenario) -> dict[str, Any]:
    """Start every worker, release them together, wait, then measure and check."""
    LeaseStore(scenario.db_path)  # create the schema before the race
    context = multiprocessing.get_context("fork")
    start = context.Event()
    procs = [context.Process(target=worker, args=(scenario, i, start))
             for i in range(scenario.processes)]  # fmt: skip
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # let every worker reach the start line
    began = time.perf_counter()
    start.set()
    for proc in procs:
        proc.join()
    wall_s = time.perf_counter() - began
    leaked = count_active_rows(scenario.db_path)
    logs = [json.loads((scenario.work_dir / f"worker-{i}.json").read_text())
            for i in range(scenario.processes)]  # fmt: skip
    return summarize(scenario, logs, wall_s, leaked, [p.exitcode for p in procs])


def count_active_rows(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM leases WHERE ended_at IS NULL").fetchone()[0])


def history_overlaps(db_path: Path) -> int:
    """Pairs of leases on one device whose [created_at, ended_at] overlap, in the store."""
    by_device: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with sqlite3.connect(db_path) as conn:
        for uuid, created, ended in conn.execute(
            "SELECT device_uuid, created_at, ended_at FROM leases WHERE ended_at IS NOT NULL"
        ):
            by_device[uuid].append((created, ended))
    return sum(overlaps(intervals) for intervals in by_device.values())


def overlaps(intervals: list[tuple[float, float]]) -> int:
    ordered = sorted(intervals)
    return sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])


def percentile_ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index] * 1000


def summarize(
    scenario: Scenario, logs: list[dict[str, Any]], wall_s: float, leaked: int, exits: list[Any]
) -> dict[str, Any]:
    entries = [entry for log in logs for entry in log["log"]]
    errors = [error for log in logs for error in log["errors"]]
    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for entry in entries:
        held[entry["uuid"]].append((entry["start_ns"], entry["end_ns"]))
    acquire = [entry["acquire_s"] for entry in entries]
    release = [entry["release_s"] for entry in entries]
    return {
        "processes": scenario.processes, "cycles": scenario.cycles,
        "devices": scenario.devices, "hold_ms": scenario.hold_ms,
        "grants": len(entries), "wall_s": wall_s,
        "ops_per_s": 2 * len(entries) / wall_s,  # one acquire + one release per grant
        "acquire_p50_ms": percentile_ms(acquire, 0.50),
        "acquire_p99_ms": percentile_ms(acquire, 0.99),
        "acquire_max_ms": max(acquire) * 1000,
        "acquire_mean_ms": statistics.fmean(acquire) * 1000,
        "release_p50_ms": percentile_ms(release, 0.50),
        "release_p99_ms": percentile_ms(release, 0.99),
        "double_grants_marker": sum(1 for entry in entries if entry["marker_clash"]),
        "double_grants_log": sum(overlaps(intervals) for intervals in held.values()),
        "double_grants_history": history_overlaps(scenario.db_path),
        "leaked_leases": leaked, "errors": errors,
        "bad_exits": sum(1 for code in exits if code != 0),
    }  # fmt: skip


def passed(result: dict[str, Any]) -> bool:
    expected_grants = result["processes"] * result["cycles"]
    double = result["double_grants_marker"] + result["double_grants_log"]
    double += result["double_grants_history"]
    clean = not result["errors"] and result["bad_exits"] == 0
    return (
        clean
        and double == 0
        and result["leaked_leases"] == 0
        and (result["grants"] == expected_grants)
    )


def machine_description(db_path: Path) -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    mem_kib = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo")
                    if line.startswith("MemTotal:")), 0)  # fmt: skip
    return [
        f"- host: {platform.node()} ({platform.system()} {platform.release()}, "
        f"{platform.machine()})",
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; memory {mem_kib / 1024 / 1024:.0f} GiB",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- database: {db_path.parent} on {filesystem_of(db_path)} (WAL, synchronous=NORMAL)",
    ]


def filesystem_of(path: Path) -> str:
    """The file system type of the longest mount point containing ``path``."""
    best, fs_type = "", "unknown"
    resolved = str(path.resolve())
    for line in _read_lines("/proc/mounts"):
        fields = line.split()
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, fs_type = fields[1], fields[2]
    return fs_type


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


HEADER = [
    "# Lease store stress benchmark", "",
    "Many processes loop acquire (waiting) -> hold (uniform 0..hold ms) -> release on one "
    "SQLite lease store. ops/s counts acquires + releases per wall-clock second. Acquire "
    "latency includes waiting for a free device when devices < processes. Double grants "
    "are counted three ways (O_EXCL marker per held device, overlapping hold intervals in "
    "the workers' logs, overlapping intervals in the store's history); leaked = rows still "
    "active after every worker exited, counted before any reaping.", "",
]  # fmt: skip


def render_section(results: list[dict[str, Any]], command: str, machine: list[str]) -> str:
    """One run: machine, exact command, results table."""
    rows = [
        "| processes x cycles | devices | grants | wall s | ops/s | acquire p50 ms "
        "| acquire p99 ms | acquire max ms | release p50 / p99 ms | double grants | leaked "
        "| errors | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        double = r["double_grants_marker"] + r["double_grants_log"] + r["double_grants_history"]
        rows.append(
            f"| {r['processes']} x {r['cycles']} | {r['devices']} | {r['grants']} "
            f"| {r['wall_s']:.2f} | {r['ops_per_s']:.0f} | {r['acquire_p50_ms']:.2f} "
            f"| {r['acquire_p99_ms']:.2f} | {r['acquire_max_ms']:.1f} "
            f"| {r['release_p50_ms']:.2f} / {r['release_p99_ms']:.2f} | {double} "
            f"| {r['leaked_leases']} | {len(r['errors'])} "
            f"| {'PASS' if passed(r) else 'FAIL'} |"
        )
    return "\n".join([
        f"## Run on {platform.node()} ({os.cpu_count()} CPUs)", "",
        "Machine:", "", *machine, "",
        "Command:", "", "```", command, "```", "",
        *rows, "",
    ])  # fmt: skip


def write_report(output: Path, section: str, *, append: bool) -> None:
    """Write the header and this run's section; with ``append``, add the section to the file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if append and output.exists():
        output.write_text(output.read_text().rstrip("\n") + "\n\n" + section)
    else:
        output.write_text("\n".join(HEADER) + "\n" + section)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=16, help="worker processes")
    parser.add_argument("--cycles", type=int, default=200, help="acquire/release per worker")
    parser.add_argument("--devices", type=int, nargs="+", default=[16, 4],
                        help="device counts, one scenario each")  # fmt: skip
    parser.add_argument("--hold-ms", type=float, default=1.0, help="max hold time per lease")
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="database path (default: a fresh file in a temp dir per scenario)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="markdown report to write ('-' for none)")  # fmt: skip
    parser.add_argument("--append", action="store_true",
                        help="add this run to the report instead of replacing it")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src " + shlex.join(
        [sys.executable, "bench/lease_stress.py", *sys.argv[1:]]
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="lease-stress-") as tmp:
        for n, devices in enumerate(args.devices):
            work_dir = Path(tmp) / f"scenario-{n}"
            work_dir.mkdir()
            db_path = args.db if args.db is not None else work_dir / "leases.db"
            if args.db is not None and n > 0:
                db_path = args.db.with_name(f"{args.db.stem}-{n}{args.db.suffix}")
            scenario = Scenario(args.processes, args.cycles, devices, args.hold_ms,
                                db_path, work_dir)  # fmt: skip
            result = run_scenario(scenario)
            results.append(result)
            print(json.dumps(result, indent=None))
        machine = machine_description(db_path)
    section = render_section(results, command, machine)
    print(section)
    if str(args.output) != "-":
        write_report(args.output, section, append=args.append)
    return 0 if all(passed(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
