"""Benchmark: the fleet planner's cycle time from 100 to 20,000 GPUs in varied real states.

Why this exists: the fleet controller plans every cycle; its cost must stay small on a
large fleet where every GPU is in its own lived-in layout with busy instances. Fleets
and waiting demand come from the Alibaba openb trace (``bench.fleet_states``), scenarios:

* light: 60% of instances busy, waiting pods = 5% of the GPU count;
* pressure: 80% busy, waiting pods = 50% of the GPU count (much stays unmet);
* five models, pressure: H100, H200, A100-80GB, A100-40GB and A30 in turn.

Each row: one ``plan_fleet`` call (grouping, options, solve, per-GPU targets) with the
exact method (``auto``) and one with the greedy alone, on the same input. Writes
``bench/results/fleet_plan_scale.md`` and ``.png`` and prints the command.

Run: ``PYTHONPATH=src python -m bench.fleet_plan_scale --data ../shared/data/alibaba-openb``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.fleet_states import MIXED_KEYS, MODEL_KEYS, fleet, fleet_models, gpu_pods, waiting_demand
from bench.openb_data import Pod
from bench.report import command, machine, table
from migctl.planner.fleet import Demand, FleetGpu, FleetPlan, plan_fleet

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 300, 1000, 3000, 10000, 20000)
SCENARIOS = {
    "light": (MODEL_KEYS, 0.6, 0.05),
    "pressure": (MODEL_KEYS, 0.8, 0.5),
    "five models, pressure": (MIXED_KEYS, 0.8, 0.5),
}


@dataclass
class Row:
    scenario: str
    gpus: int
    demand: int
    exact: FleetPlan
    exact_s: float
    greedy: FleetPlan
    greedy_s: float

    def cells(self) -> list[object]:
        e, g = self.exact, self.greedy
        return [
            self.scenario,
            self.gpus,
            e.classes,
            e.groups,
            e.options,
            self.demand,
            e.served,
            sum(e.unmet) - e.unmet_bound,
            e.destroyed,
            e.reshaped,
            e.optimal,
            f"{self.exact_s:.3f}",
            g.served,
            g.destroyed,
            g.reshaped,
            f"{self.greedy_s:.3f}",
        ]


HEADERS = [
    "scenario",
    "GPUs",
    "distinct states",
    "groups",
    "options",
    "waiting",
    "served",
    "unmet above bound",
    "idle destroyed",
    "GPUs reshaped",
    "proven optimal",
    "exact s",
    "greedy served",
    "greedy destroyed",
    "greedy reshaped",
    "greedy s",
]


def _timed(
    gpus: list[FleetGpu], demand: list[Demand], method: str, limit: float
) -> tuple[FleetPlan, float]:
    started = time.perf_counter()
    plan = plan_fleet(gpus, demand, method=method, time_limit_s=limit)
    return plan, time.perf_counter() - started


def measure(scenario: str, n: int, pods: Sequence[Pod], limit: float) -> Row:
    keys, busy, waiting = SCENARIOS[scenario]
    models = fleet_models(keys)
    gpus = fleet(n, pods, models, busy=busy)
    count = max(10, round(waiting * n))
    demand = waiting_demand(count, pods, models)
    exact, exact_s = _timed(gpus, demand, "auto", limit)
    greedy, greedy_s = _timed(gpus, demand, "heuristic", limit)
    return Row(scenario, n, count, exact, exact_s, greedy, greedy_s)


def plot(rows: Sequence[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for scenario in SCENARIOS:
        mine = [r for r in rows if r.scenario == scenario]
        if not mine:
            continue
        xs = [r.gpus for r in mine]
        line = axis.plot(xs, [r.exact_s for r in mine], "-o", label=f"{scenario}: exact")
        axis.plot(
            xs,
            [r.greedy_s for r in mine],
            "--s",
            color=line[0].get_color(),
            label=f"{scenario}: greedy",
        )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="GPUs in fleet",
        ylabel="plan_fleet() wall seconds",
        title="Fleet planning cycle, varied states",
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def report(rows: Sequence[Row], cmd: str) -> list[str]:
    return [
        "# Fleet planner scale benchmark",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine()}, shared with other work. Timings are wall-clock of one "
        "`plan_fleet()` call: grouping GPUs by state, listing each state's options, solving, "
        "and writing every GPU's target with placements.",
        "",
        "Fleets: each GPU filled with the openb trace's share pods up to a random level, each "
        "instance busy (pinned) or idle at random; waiting pods drawn from all the trace's GPU "
        "pods (most ask a whole GPU). exact = staged integer program (HiGHS): most served, then "
        "fewest idle instances destroyed, then fewest GPUs reshaped, then fewest memory slices; "
        "greedy = the solver-free fallback on the same input. `unmet above bound` = unmet minus "
        "the proven lower bound (0: optimal in served demand). Busy instances destroyed: 0 in "
        "every row (the options never include them).",
        "",
        "![fleet plan scale](fleet_plan_scale.png)",
        "",
        *table(HEADERS, [r.cells() for r in rows]),
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the alibaba-openb directory")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--time-limit", type=float, default=30.0)
    args = parser.parse_args(argv)
    pods = gpu_pods(args.data)
    warm = fleet(10, pods, fleet_models())
    plan_fleet(warm, waiting_demand(5, pods, fleet_models()))  # imports, caches
    rows = []
    for scenario in SCENARIOS:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(scenario, n, pods, args.time_limit))
            print(table(HEADERS, [rows[-1].cells()])[-1], flush=True)
    cmd = command("bench.fleet_plan_scale", argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet_plan_scale.md").write_text("\n".join(report(rows, cmd)))
    plot(rows, args.out / "fleet_plan_scale.png")
    print(f"wrote {args.out / 'fleet_plan_scale.md'} and {args.out / 'fleet_plan_scale.png'}")
    print(f"command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
