"""Benchmark: static MIG layouts versus demand-driven repartitioning, replayed on request traces.

Why this exists: issue "migctl service" §3 asks whether reshaping idle slices for waiting
lease requests pays off, and at what cost. This replays seeded synthetic traces (and, given
``--openb PATH``, the Alibaba openb pods) on a modelled 8x H100 machine (and a mixed
4x H100 + 4x H200 one) with ``migctl.repartition.replay`` under four policies:

* static balanced: every GPU 2x 1g.10gb + 2g.20gb + 3g.40gb, never changed;
* static tuned: the best fixed layout for the trace's average mix (an oracle that has seen the
  whole trace: expected concurrency per size class, packed with the planner);
* dynamic: the daemon's defaults (min idle 300 s, 12 reshapes/hour, aging 600 s, reservation
  after 300 s), starting balanced;
* dynamic, no limits: min idle 0, no budget (same aging/reservation), starting balanced.

Every reshape takes ``--reshape-seconds`` before its new instance is usable. A request gives up
after ``--max-wait`` seconds (acceptance = served within it). Writes
``bench/results/repartition_replay.md`` and ``repartition_*.png``, and prints the command.

Run: ``PYTHONPATH=src python -m bench.repartition_replay [--openb PATH] [--requests N]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import repartition_traces as traces
from bench.repartition_traces import Layout, Trace
from migctl.catalog import load_catalog
from migctl.model import GpuModel
from migctl.repartition import Policy
from migctl.repartition.replay import ReplayConfig, replay
from migctl.repartition.replay_metrics import ReplayResult, percentile

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600.0


@dataclass
class Machine:
    name: str
    models: list[GpuModel]


@dataclass
class Run:
    trace: Trace
    machine: Machine
    policy: str
    result: ReplayResult
    seconds: float


def policies(args: argparse.Namespace) -> dict[str, tuple[Policy, bool]]:
    """Name -> (policy, start from the tuned layout instead of balanced)."""
    return {
        "static balanced": (Policy(mode="off"), False),
        "static tuned": (Policy(mode="off"), True),
        "dynamic": (Policy(mode="on"), False),
        "dynamic, no limits": (
            Policy(mode="on", min_idle_seconds=0, max_reconfigurations_per_hour=None),
            False,
        ),
    }


def run_all(args: argparse.Namespace, machine: Machine, trace: Trace) -> list[Run]:
    runs = []
    start_layouts: dict[bool, list[Layout]] = {
        False: [traces.balanced(m) for m in machine.models],
        True: traces.tuned(machine.models, trace),
    }
    for name, (policy, tuned) in policies(args).items():
        config = ReplayConfig(name, policy, args.reshape_seconds, args.max_wait)
        started = time.perf_counter()
        result = replay(machine.models, start_layouts[tuned], trace.requests, config)
        run = Run(trace, machine, name, result, time.perf_counter() - started)
        print(f"  {name:20s} {result.summary()} {run.seconds:.1f}s", flush=True)
        runs.append(run)
    return runs


def work_served(run: Run) -> float:
    """Share of the offered work (smallest H100 profile's slices x duration) that was served."""
    model = run.machine.models[0]
    served = {o.request_id for o in run.result.outcomes if o.served}
    total = done = 0.0
    for request in run.trace.requests:
        work = request.duration_s * traces.slices_needed(model, request)
        total += work
        done += work if request.id in served else 0.0
    return done / total if total else 0.0


SENSITIVITY = (
    ("max_reconfigurations_per_hour", (6, 12, 24, 48, None)),
    ("min_idle_seconds", (0.0, 60.0, 300.0, 900.0)),
    ("reserve_after_seconds", (None, 120.0, 300.0)),
)


def sensitivity(args: argparse.Namespace, machine: Machine, trace: Trace) -> list[Run]:
    """The dynamic policy with one setting changed at a time (the others at their defaults)."""
    runs = []
    layouts = [traces.balanced(m) for m in machine.models]
    for field, values in SENSITIVITY:
        for value in values:
            policy = Policy.model_validate({"mode": "on", field: value})
            name = f"{field} = {value}"
            config = ReplayConfig(name, policy, args.reshape_seconds, args.max_wait)
            started = time.perf_counter()
            result = replay(machine.models, layouts, trace.requests, config)
            runs.append(Run(trace, machine, name, result, time.perf_counter() - started))
            print(f"  {name:40s} acceptance {result.acceptance:.3f}", flush=True)
    return runs


def row(run: Run) -> str:
    result = run.result
    waits = result.waits
    span_h = (result.window_end_s - result.window_start_s) / HOUR
    cells = [
        run.policy,
        f"{result.acceptance:.1%}",
        f"{work_served(run):.1%}",
        f"{sum(waits) / len(waits):.0f}" if waits else "-",
        f"{percentile(waits, 0.95):.0f}" if waits else "-",
        f"{result.utilisation:.1%}",
        str(result.reconfigurations),
        f"{result.reconfigurations / span_h:.2f}" if span_h else "-",
        str(result.destroyed_instances),
        f"{1000 * result.decide_seconds / max(1, result.decide_calls):.2f}",
        f"{run.seconds:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| policy | acceptance | work served | mean wait s | p95 wait s | slice utilisation | reshapes |"
    " reshapes/h | destroyed GIs | decide ms (mean) | replay s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def comparison(runs: Sequence[Run]) -> str:
    """One computed sentence: the dynamic policy (defaults) against each static layout."""
    by_name = {r.policy: r for r in runs}
    dynamic = by_name["dynamic"]
    parts = []
    for name in ("static balanced", "static tuned"):
        static = by_name[name]
        acceptance = 100 * (dynamic.result.acceptance - static.result.acceptance)
        work = 100 * (work_served(dynamic) - work_served(static))
        parts.append(f"{acceptance:+.1f} points acceptance and {work:+.1f} points work served"
                     f" against {name}")  # fmt: skip
    return (
        f"Dynamic (defaults): {'; '.join(parts)}; at {dynamic.result.reconfigurations} reshapes"
        f" destroying {dynamic.result.destroyed_instances} idle instances."
    )


def class_table(runs: Sequence[Run]) -> list[str]:
    """Acceptance per size class and policy (do large requests get their turn?)."""
    trace = runs[0].trace
    labels = sorted(set(trace.classes.values()), key=_class_order)
    lines = ["| class | requests | " + " | ".join(r.policy for r in runs) + " |"]
    lines.append("|---|---|" + "---|" * len(runs))
    for label in labels:
        ids = {i for i, c in trace.classes.items() if c == label}
        cells = []
        for run in runs:
            mine = [o for o in run.result.outcomes if o.request_id in ids]
            cells.append(f"{sum(o.served for o in mine) / len(mine):.0%}")
        lines.append(f"| {label} | {len(ids)} | " + " | ".join(cells) + " |")
    return lines


def _class_order(label: str) -> tuple[float, str]:
    """Synthetic classes small to xl, openb classes by milli-GPU."""
    names = [c.name for c in traces.CLASSES]
    if label in names:
        return (float(names.index(label)), label)
    head = label.split(maxsplit=1)[0]
    return (float(head), label) if head.isdigit() else (0.0, label)


def plot(groups: Sequence[list[Run]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for index, runs in enumerate(groups):
        figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
        for run in runs:
            result = run.result
            points = result.timeline.binned(result.window_start_s, result.window_end_s, 120)
            left.plot([t / HOUR for t, _ in points], [100 * u for _, u in points], label=run.policy)
            waits = sorted(result.waits)
            if waits:
                right.plot(waits, [100 * (i + 1) / len(result.outcomes) for i in range(len(waits))],
                           label=run.policy)  # fmt: skip
        title = f"{runs[0].trace.name} on {runs[0].machine.name}"
        left.set(xlabel="hours", ylabel="busy memory slices %", title=f"Utilisation: {title}")
        right.set(xlabel="wait s (served requests)", ylabel="% of all requests served within",
                  title="Waiting time (curves end at acceptance)")  # fmt: skip
        for axis in (left, right):
            axis.grid(True, alpha=0.3)
        left.legend(fontsize=7, loc="lower left")
        right.legend(fontsize=7, loc="lower right")
        left.title.set_fontsize(9)
        figure.tight_layout()
        name = f"repartition_replay_{index + 1}.png"
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        names.append(name)
    return names


def write_report(
    out: Path,
    groups: Sequence[list[Run]],
    sweep: Sequence[Run],
    command: str,
    args: argparse.Namespace,
) -> None:
    images = plot(groups, out)
    text = [
        "# Repartitioning replay: static layouts versus demand-driven reshaping",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()},"
        f" {time.strftime('%Y-%m-%d')}, a shared 2-core machine.",
        "",
        "Policies (each trace replayed under all four, same machine, same start):",
        "",
        "* **static balanced**: every GPU 2x 1g + 1x 2g + 1x 3g (NVIDIA's all-balanced), never"
        " changed; a request takes the smallest free device that fits;",
        "* **static tuned**: a fixed layout sized for the trace's *average* mix (expected"
        " concurrency per size class packed with `migctl.planner.pack`), i.e. an oracle that"
        " has seen the whole trace;",
        "* **dynamic**: `decide` with the library defaults"
        f" (`{Policy(mode='on').model_dump()}`), starting balanced;",
        "* **dynamic, no limits**: min idle 0 s and no hourly budget (aging and reservation"
        " as the defaults), starting balanced.",
        "",
        f"Reshape time {args.reshape_seconds:g} s; maximum wait {args.max_wait:g} s;"
        " acceptance = share of requests served within the maximum wait; work served = share"
        " of the offered slice-seconds (smallest H100 profile x duration) that was served;"
        " utilisation = time-weighted share of memory slices held by a running request over"
        " the arrival window; waits are of served requests; reshapes/h over that window.",
        "Model simplifications: one default compute instance per GPU instance, no failures,"
        " exact durations, aging only reorders between events (see `migctl.repartition.replay`).",
        "",
    ]
    for runs, image in zip(groups, images, strict=True):
        trace, machine = runs[0].trace, runs[0].machine
        text += [
            f"## {trace.name} on {machine.name}",
            "",
            f"{len(trace.requests)} requests; offered load {trace.load:.2f} (smallest fitting"
            f" profile's memory slices x duration / machine slices x span). {trace.note}",
            "",
            HEADER,
            *(row(r) for r in runs),
            "",
            comparison(runs),
            "",
            "Served within the maximum wait, per size class:",
            "",
            *class_table(runs),
            "",
            f"![{trace.name}]({image})",
            "",
        ]
    text += [
        f"## Sensitivity of the dynamic policy: {sweep[0].trace.name} on {sweep[0].machine.name}",
        "",
        "One setting changed at a time; the others at their defaults"
        f" ({Policy(mode='on').model_dump()}).",
        "",
        HEADER,
        *(row(r) for r in sweep),
        "",
        "Reading it: `min_idle_seconds` protects a job that releases and re-acquires its device"
        " (its slices are not re-cut under it) and `max_reconfigurations_per_hour` bounds driver"
        " churn; both delay reshapes, which shows as waiting and, with clients that give up"
        f" after {args.max_wait:g} s, as lower acceptance. A reservation drains a GPU for the"
        " head of the queue even if that request later gives up, so with impatient clients it"
        " can cost acceptance; it is what guarantees that patient large requests are served at"
        " all (`tests/unit/test_repartition_fairness.py`: without it a whole-GPU request waits"
        " as long as small requests keep coming).",
        "",
    ]
    (out / "repartition_replay.md").write_text("\n".join(text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--load", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reshape-seconds", type=float, default=10.0)
    parser.add_argument("--max-wait", type=float, default=600.0)
    parser.add_argument("--openb", type=Path, default=None, help="openb_pod_list_default.csv")
    parser.add_argument("--no-mixed", action="store_true", help="skip the H100+H200 machine")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    h100, h200 = catalog.get("h100-80gb-hbm3"), catalog.get("h200-141gb")
    node = Machine("8x H100 80GB", [h100] * 8)
    cases = [
        (node, traces.synthetic(h100, 8, args.requests, args.load, args.seed)),
        (node, traces.phased(h100, 8, args.requests, args.load, args.seed + 1)),
    ]
    if args.openb is not None:
        cases.append((node, traces.openb(args.openb, h100, 8, args.requests, args.load)))
    if not args.no_mixed:
        mixed = Machine("4x H100 80GB + 4x H200 141GB", [h100] * 4 + [h200] * 4)
        cases.append((mixed, traces.phased(h100, 8, args.requests, args.load, args.seed + 2)))
    groups = []
    for machine, trace in cases:
        print(
            f"{trace.name} on {machine.name} ({len(trace.requests)} requests, load {trace.load:.2f})"
        )
        groups.append(run_all(args, machine, trace))
    print("sensitivity of the dynamic policy on", cases[1][1].name)
    sweep = sensitivity(args, *cases[1])
    args.out.mkdir(parents=True, exist_ok=True)
    given = list(argv if argv is not None else sys.argv[1:])
    command = " ".join(["PYTHONPATH=src python -m bench.repartition_replay", *given])
    write_report(args.out, groups, sweep, command, args)
    print(f"wrote {args.out / 'repartition_replay.md'}\ncommand: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
