"""Benchmark: the fleet controller (issue 14): reshape latency, the openb replay, the fill with
batch admission, control-plane cost, and what workers cost per host.

Writes ``bench/results/fleet_bench.md`` with ``fleet_replay.png`` and ``fleet_cycle.png``, and
prints the command. Parts (``--parts``, all by default):

* ``latency``: reshape latency from demand to task start on a real ``MigCluster`` (simulated
  NVML), split into cycle wait / plan / drain / NVML / worker start; worker memory and start time
  per host (``bench.fleet_latency``);
* ``replay``: the openb trace as Dask tasks across simulated hosts in queue mode, four policies,
  at 100% and 120% of the trace's peak (``bench.fleet_replay``, simulated time);
* ``fill``: FGD's fill-until-full with the fleet planner admitting the queue in batches
  (``bench.fleet_fill``), against the online policy and the offline optimum;
* ``cycle``: one controller cycle on fleets of 100 to 20,000 GPUs in varied states
  (``bench.fleet_cycle``).

Run: ``PYTHONPATH=src python -m bench.fleet_bench --data ../shared/data/alibaba-openb --out bench/results``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import fleet_cycle, fleet_fill, fleet_latency, fleet_replay
from bench.fleet_states import gpu_pods
from bench.openb_data import load_nodes, load_pods
from migctl.catalog import load_catalog

MODEL = "h100-80gb-hbm3"
PARTS = ("latency", "replay", "fill", "cycle")
SEEDS = (42, 43, 44)
BATCHES = (0, 1024, 256)
LOADS = (1.0, 1.2)


def _hours(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 3600:.1f} h"


def latency_part(out: list[str]) -> None:
    rows = fleet_latency.trials(8)
    out += [
        "## Reshape latency, demand to task start (real processes, simulated NVML)",
        "",
        "One host (one H100, 4g.40gb + 3g.40gb with a worker each); tasks alternately ask for "
        "7g.80gb and 4g.40gb, so each needs a reshape; controller cycle 0.5 s. Times from the "
        "controller's own decisions and the task's start on its worker.",
        "",
        "| trial | asks | wait for a cycle s | plan s | drain s | NVML s | worker start s | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, row in enumerate(rows, 1):
        out.append(
            f"| {k} | {row.profile} | {row.cycle_wait_s:.2f} | {row.plan_s:.3f} | {row.drain_s:.2f} "
            f"| {row.nvml_s:.2f} | {row.worker_start_s:.2f} | {row.total_s:.2f} |"
        )
    med = {
        f: statistics.median(getattr(r, f) for r in rows)
        for f in rows[0].__dataclass_fields__
        if f != "profile"
    }
    out.append(
        f"| median | | {med['cycle_wait_s']:.2f} | {med['plan_s']:.3f} | {med['drain_s']:.2f} "
        f"| {med['nvml_s']:.2f} | {med['worker_start_s']:.2f} | {med['total_s']:.2f} |"
    )
    costs = fleet_latency.host_costs()
    out += [
        "",
        "Worker cost per host: from the agents' start to every worker running, and resident "
        "memory of each worker's process group (`migctl run` + `dask worker`, from /proc).",
        "",
        "| host | layout | workers | all running after s | RSS per worker MiB | RSS total MiB |",
        "|---|---|---|---|---|---|",
    ]
    out += [
        f"| {c.host} | {c.layout} | {c.workers} | {c.up_s:.1f} | {c.rss_mib_per_worker:.0f} | {c.rss_mib_total:.0f} |"
        for c in costs
    ]
    out.append("")


def replay_part(data: Path, out: list[str], figure: Path) -> None:
    model = load_catalog().get(MODEL)
    pods = load_pods(data)
    jobs = fleet_replay.jobs_of(pods, model)
    peak = fleet_replay.peak_gpus(pods)
    results = [
        fleet_replay.replay(jobs, model, p, load, peak)
        for load in LOADS
        for p in fleet_replay.POLICIES
    ]
    out += [
        "## The openb trace as Dask tasks, queue mode",
        "",
        f"{len(jobs)} tasks from the trace's GPU pods (a k-GPU pod: k tasks of 7g.80gb); peak "
        f"concurrent requested demand {peak:.2f} GPUs. Fleet: peak / load GPUs in hosts of 8 H100s, "
        "all starting in the same tuned layout (the trace's time-averaged profile mix, packed by the "
        "fleet planner; an oracle). Simulated time: the controller's real code against a modelled "
        "scheduler and hosts (`bench/fleet_sim.py`: idealised work stealing, NVML 2 s per reshape, "
        "worker start 3 s, controller cycle 10 s); the clock jumps from event to event, so the "
        "149-day trace replays in minutes. 'within 1 h': tasks started within an hour of arrival; "
        "utilisation: memory slices held by running tasks over all slices, over the replay.",
        "",
        "| load | policy | GPUs | tasks | started | within 1 h | mean wait | p99 wait | slice utilisation "
        "| busy instances destroyed | tasks re-run | reshapes | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r.load:.0%} | {r.policy} | {r.gpus} | {r.tasks} | {r.started} | "
            f"{r.within_hour / r.tasks:.1%} | {_hours(r.mean_wait_s)} | {_hours(r.p99_wait_s)} | "
            f"{r.utilisation:.1%} | {r.busy_destroyed} | {r.reruns} | {r.reshapes} | {r.wall_s:.0f} |"
        )
    out.append("")
    _plot_replay(results, figure)
    out += [f"![replay]({figure.name})", ""]


def _plot_replay(results: Sequence[fleet_replay.Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LOADS), figsize=(11, 4), sharey=True)
    for axis, load in zip(axes, LOADS, strict=True):
        for r in (r for r in results if r.load == load):
            waits = [max(w, 1.0) for w in r.waits]
            axis.plot(waits, [k / len(waits) for k in range(len(waits))], label=r.policy)
        axis.set_xscale("log")
        axis.set_title(f"load {load:.0%} of peak")
        axis.set_xlabel("wait before start, s (1 s = no wait)")
    axes[0].set_ylabel("share of tasks")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fill_part(data: Path, out: list[str]) -> None:
    model = load_catalog().get(MODEL)
    pods = load_pods(data)
    gpus = sum(n.gpus for n in load_nodes(data))
    rows = [
        fleet_fill.batch_fill(pods, model, gpus, seed, batch) for batch in BATCHES for seed in SEEDS
    ]
    out += [
        "## Fill until full: batch admission by the fleet planner",
        "",
        f"FGD's measurement on the trace's {gpus} GPUs as H100s (`bench/fleet_fill.py`); seeds "
        f"{', '.join(map(str, SEEDS))}. Batch 0: one batch at the reading. For comparison "
        "(bench/results/openb.md, seeds 42-51): online migctl 90.4% useful, first-fit 90.3%, the "
        "MIG offline optimum 94.1%.",
        "",
        "| batch | useful (mean of seeds) | slices held | pods placed | plans | s per run |",
        "|---|---|---|---|---|---|",
    ]
    for batch in BATCHES:
        mine = [r for r in rows if r.batch == batch]
        out.append(
            f"| {batch or 'one, at the reading'} | {statistics.mean(r.useful for r in mine):.1%} | "
            f"{statistics.mean(r.slices for r in mine):.1%} | {statistics.mean(r.placed_pods for r in mine):.0f} | "
            f"{mine[0].plans} | {statistics.mean(r.seconds for r in mine):.1f} |"
        )
    out.append("")


def cycle_part(data: Path, out: list[str], figure: Path) -> None:
    model = load_catalog().get(MODEL)
    pods = gpu_pods(data)
    fleet_cycle.measure(50, pods, model)  # imports and solver warm-up
    rows = [fleet_cycle.measure(n, pods, model) for n in fleet_cycle.SIZES]
    out += [
        "## Control-plane cost: one controller cycle vs fleet size",
        "",
        "H100 fleets in varied states (`bench/fleet_states.py`: each GPU filled from the trace's "
        "share pods to a random level, instances busy with probability 0.6), a worker on every idle "
        "device, half as many pods waiting as GPUs. One `FleetController.cycle()` against the "
        "modelled scheduler and hosts: read, plan, act (16 reshapes in flight at most; the rest "
        "deferred).",
        "",
        "| GPUs | hosts | workers | waiting | distinct states | cycle s | of which plan s | drains begun | deferred |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.gpus} | {r.hosts} | {r.workers} | {r.waiting} | {r.states} | {r.cycle_s:.3f} | "
        f"{r.plan_s:.3f} | {r.started_drains} | {r.deferred} |"
        for r in rows
    ]
    out += ["", f"![cycle]({figure.name})", ""]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4))
    axis.plot([r.gpus for r in rows], [r.cycle_s for r in rows], marker="o", label="cycle")
    axis.plot([r.gpus for r in rows], [r.plan_s for r in rows], marker="s", label="of which plan")
    axis.set_xscale("log")
    axis.set_xlabel("simulated GPUs")
    axis.set_ylabel("seconds")
    axis.legend()
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the alibaba-openb directory")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)  # the figures are written as the parts end
    out: list[str] = []
    if "latency" in parts:
        latency_part(out)
    if "replay" in parts:
        replay_part(args.data, out, args.out / "fleet_replay.png")
    if "fill" in parts:
        fill_part(args.data, out)
    if "cycle" in parts:
        cycle_part(args.data, out, args.out / "fleet_cycle.png")
    command = "PYTHONPATH=src python -m bench.fleet_bench " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    head = [
        "# Fleet controller benchmarks (issue 14)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, 2 CPUs shared with other work, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; all parts took "
        f"{time.perf_counter() - started:.0f} s.",
        "",
    ]
    (args.out / "fleet_bench.md").write_text("\n".join(head + out) + "\n")
    print(command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
