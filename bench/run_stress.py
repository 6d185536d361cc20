"""``migctl run`` stress benchmark: many concurrent ``migctl run`` commands on a simulated machine.

Why this exists: ``bench/results/lease_stress.md`` measures the lease store alone; this measures
what users run, end to end: a new ``migctl`` process (Python start-up, CLI, simulator backend),
a lease, the fork/exec of the command with its device variables, the simulator attach, the
release. It checks the promise too: no MIG device is ever used by two commands at once, and no
lease is left behind. Run it as::

    PYTHONPATH=src python bench/run_stress.py --workers 16 --runs 10 --devices 16 4

Each worker (a thread) starts ``migctl run --wait 600 -- sh -c '...'`` ``--runs`` times in a
row. The command records, with the kernel clock (``date +%s.%N``), when it started and ended
after holding the device ``--hold-ms``; the worker records when it launched ``migctl``. Double
use is counted two ways: overlapping [start, end] spans of commands on one device, and
overlapping [created_at, ended_at] leases on one device in the store's history. Leaked = lease
rows still active after every worker has finished, counted with plain SQL (before any reaping).
Only this script imports this module; it drives migctl through its command line.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "run_stress.md"
SRC = Path(__file__).resolve().parents[1] / "src"
MACHINE = "dgx-h100"  # 8 x H100: up to 7 1g.10gb MIG devices per GPU
CHILD = 'date +%s.%N > "$1"; sleep "$2"; echo "$CUDA_VISIBLE_DEVICES" >> "$1"; date +%s.%N >> "$1"'


@dataclass(frozen=True)
class Scenario:
    workers: int
    runs: int
    devices: int
    hold_ms: float
    work_dir: Path
    pycache_dir: Path

    @property
    def db_path(self) -> Path:
        return self.work_dir / "leases.db"


def environment(scenario: Scenario) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")])),
        MIGCTL_SIM=MACHINE,
        MIGCTL_SIM_DIR=str(scenario.work_dir / "sim"),
        MIGCTL_LEASE_DB=str(scenario.db_path),
    )
    env.pop("MIGCTL_OUTPUT", None)
    # Cached bytecode, as an installed migctl has (kept out of the source tree).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scenario.pycache_dir)
    return env


def prepare_machine(scenario: Scenario, env: dict[str, str]) -> None:
    """``devices`` 1g.10gb MIG devices, 7 per GPU, on a fresh simulated DGX H100."""
    gpus = (scenario.devices + 6) // 7
    migctl = [sys.executable, "-m", "migctl"]
    ids = ",".join(str(gpu) for gpu in range(gpus))
    subprocess.run([*migctl, "mode", "enable", "-i", ids], env=env, check=True, capture_output=True)
    for gpu in range(gpus):
        count = min(7, scenario.devices - 7 * gpu)
        profiles = ",".join(["1g.10gb"] * count)
        subprocess.run(
            [*migctl, "gi", "create", profiles, "-i", str(gpu), "-C"],
            env=env,
            check=True,
            capture_output=True,
        )


def worker(scenario: Scenario, index: int, env: dict[str, str], log: list[dict[str, Any]]) -> None:
    hold_s = f"{scenario.hold_ms / 1000:.3f}"
    for run in range(scenario.runs):
        out = scenario.work_dir / f"w{index:02d}-r{run:03d}.txt"
        argv = [sys.executable, "-m", "migctl", "run", "-q", "--wait", "600", "--profile",
                "1g.10gb", "--job", f"bench{index}", "--", "sh", "-c", CHILD, "sh", str(out),
                hold_s]  # fmt: skip
        launched = time.time()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        finished = time.time()
        entry: dict[str, Any] = {"launched": launched, "finished": finished, "rc": done.returncode}
        if done.returncode == 0:
            started, uuid, ended = out.read_text().split()
            entry.update(uuid=uuid, started=float(started), ended=float(ended))
        else:
            entry["stderr"] = done.stderr.strip()[-300:]
        log.append(entry)


def run_scenario(scenario: Scenario) -> dict[str, Any]:
    env = environment(scenario)
    prepare_machine(scenario, env)
    logs: list[list[dict[str, Any]]] = [[] for _ in range(scenario.workers)]
    threads = [
        threading.Thread(target=worker, args=(scenario, n, env, logs[n]))
        for n in range(scenario.workers)
    ]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.time() - began
    entries = [entry for log in logs for entry in log]
    return summarize(scenario, entries, wall_s)


def overlaps(spans: dict[str, list[tuple[float, float]]]) -> int:
    count = 0
    for intervals in spans.values():
        ordered = sorted(intervals)
        count += sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])
    return count


def store_facts(db_path: Path) -> tuple[int, int, dict[str, int]]:
    """(active rows, overlapping lease intervals, end reasons) straight from the database."""
    with sqlite3.connect(db_path) as conn:
        active = conn.execute("SELECT COUNT(*) FROM leases WHERE ended_at IS NULL").fetchone()[0]
        rows = conn.execute(
            "SELECT device_uuid, created_at, ended_at, end_reason FROM leases"
        ).fetchall()
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    reasons: dict[str, int] = defaultdict(int)
    for uuid, created, ended, reason in rows:
        spans[uuid].append((created, ended if ended is not None else float("inf")))
        reasons[str(reason)] += 1
    return active, overlaps(spans), dict(reasons)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarize(scenario: Scenario, entries: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    ok = [e for e in entries if e["rc"] == 0]
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for entry in ok:
        spans[entry["uuid"]].append((entry["started"], entry["ended"]))
    to_start = [1000 * (e["started"] - e["launched"]) for e in ok]
    total = [1000 * (e["finished"] - e["launched"]) for e in ok]
    overhead = [t - scenario.hold_ms for t in total]
    active, store_overlaps, reasons = store_facts(scenario.db_path)
    return {
        "scenario": scenario,
        "runs": len(entries),
        "failed": len(entries) - len(ok),
        "errors": sorted({e.get("stderr", "") for e in entries if e["rc"] != 0})[:3],
        "wall_s": wall_s,
        "runs_per_s": len(ok) / wall_s if wall_s else 0.0,
        "start_p50": statistics.median(to_start) if ok else float("nan"),
        "start_p99": percentile(to_start, 0.99) if ok else float("nan"),
        "start_max": max(to_start) if ok else float("nan"),
        "overhead_p50": statistics.median(overhead) if ok else float("nan"),
        "devices_used": len(spans),
        "double_use": overlaps(spans),
        "store_overlaps": store_overlaps,
        "leaked": active,
        "reasons": reasons,
    }


def passed(result: dict[str, Any]) -> bool:
    return (
        result["failed"] == 0
        and result["double_use"] == 0
        and result["store_overlaps"] == 0
        and result["leaked"] == 0
        and set(result["reasons"]) <= {"released", "holder-died"}
    )


def machine_description() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- host: {platform.node()} ({platform.system()} {platform.release()}, "
        f"{platform.machine()})",
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- simulated machine: {MACHINE}; lease database and simulator state on "
        f"{tempfile.gettempdir()}; bytecode cached (PYTHONPYCACHEPREFIX)",
    ]


def render(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# `migctl run` stress benchmark",
        "",
        "Worker threads each start `migctl run --wait 600 --profile 1g.10gb -- sh -c ...` in a "
        "row on one simulated DGX H100 (`MIGCTL_SIM=dgx-h100`), all at once. *to start* is "
        "from launching the `migctl` process to the command's first instruction (Python "
        "start-up, CLI, simulator backend, lease, fork/exec, simulator attach), waiting for a "
        "free device included; *overhead* is a run's total time minus the hold time (start-up "
        "+ release + exit). Double use is counted on the commands' own clocks (overlapping "
        "[start, end] on one device) and in the store's history (overlapping lease intervals); "
        "leaked = leases still active after all workers finished. Every lease must end "
        "`released` (by its `migctl run`) or `holder-died` (another migctl, reaping before "
        "acquiring, noticed first that the command had exited: also correct).",
        "",
        f"## Run on {platform.node()} ({os.cpu_count()} CPUs)",
        "",
        "Machine:",
        "",
        *machine_description(),
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        "| workers x runs | devices | hold ms | wall s | runs/s | to start p50 / p99 / max ms "
        "| overhead p50 ms | devices used | double use | store overlaps | leaked | failed "
        "| ended released / holder-died | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["scenario"]
        lines.append(
            f"| {s.workers} x {s.runs} | {s.devices} | {s.hold_ms:g} | {r['wall_s']:.1f} "
            f"| {r['runs_per_s']:.1f} | {r['start_p50']:.0f} / {r['start_p99']:.0f} / "
            f"{r['start_max']:.0f} | {r['overhead_p50']:.0f} | {r['devices_used']} "
            f"| {r['double_use']} | {r['store_overlaps']} | {r['leaked']} | {r['failed']} "
            f"| {r['reasons'].get('released', 0)} / {r['reasons'].get('holder-died', 0)} "
            f"| {'PASS' if passed(r) else 'FAIL'} |"
        )
    for r in results:
        for error in r["errors"]:
            lines.append(f"\nerror seen: `{error}`")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--runs", type=int, default=10, help="runs per worker")
    parser.add_argument("--devices", type=int, nargs="+", default=[16, 4])
    parser.add_argument("--hold-ms", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "PYTHONPATH=src " + shlex.join(
        ["python", "bench/run_stress.py", *(sys.argv[1:] if argv is None else argv)]
    )
    results = []
    pycache = Path(tempfile.mkdtemp(prefix="run-stress-pycache-"))
    for devices in args.devices:
        with tempfile.TemporaryDirectory(prefix="run-stress-") as work:
            scenario = Scenario(args.workers, args.runs, devices, args.hold_ms, Path(work), pycache)
            result = run_scenario(scenario)
            results.append(result)
            print(
                f"{devices} devices: {result['runs']} runs in {result['wall_s']:.1f} s, "
                f"double use {result['double_use']}, leaked {result['leaked']}, "
                f"failed {result['failed']}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, command))
    print(f"wrote {args.out}")
    return 0 if all(passed(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
