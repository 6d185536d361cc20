"""Benchmark: how the planner scales. Packing 100 to 20,000 GPUs (exact vs heuristic, gap to
the lower bound, time, peak memory), ParvaGPU's published layouts re-packed, and the
latency of one-GPU feasibility (``plan_gpu``).

Why this exists: speed and quality goals live here, never in timed tests. Writes
``bench/results/planner_scale.md`` and ``planner_scale.png`` and prints the command that
produced them. The ParvaGPU and Alibaba workloads need ``--data DIR`` (the directory
holding ``parvagpu/`` and ``alibaba-openb/``); without it they are skipped.

Run: ``PYTHONPATH=src python -m bench.planner_scale --data ../shared/data [--sizes 100,1000]``
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import machine
from migctl.catalog import load_catalog
from migctl.model import GpuModel
from migctl.planner import (
    Demand,
    InfeasibleError,
    PackResult,
    Requirement,
    pack,
    place,
    plan_gpu,
)

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 300, 1000, 3000, 10000, 20000)
FILL = 0.9  # demand sized to about 90% of the fleet's capacity
A100_SIZES = {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}

Workload = Callable[[int], tuple[list[GpuModel], list[Demand]]]


@dataclass
class Run:
    gpus_used: int
    unmet: int
    seconds: float
    peak_mib: float
    optimal: bool


@dataclass
class Row:
    workload: str
    fleet: int
    instances: int
    bound: int
    exact: Run
    heuristic: Run

    @property
    def gap_pct(self) -> float:
        """Heuristic GPUs above exact GPUs, in percent of exact."""
        if not self.exact.gpus_used:
            return 0.0
        return 100 * (self.heuristic.gpus_used - self.exact.gpus_used) / self.exact.gpus_used


def scaled(model: GpuModel, mix: Sequence[tuple[Demand, float]]) -> Workload:
    """Repeat a weighted mix of demands until its smallest profiles fill ~90% of the slices."""
    slices = model.memory_slices or 8
    per_unit = sum(w * d.candidates(model)[0].memory_slices for d, w in mix)

    def build(n: int) -> tuple[list[GpuModel], list[Demand]]:
        units = FILL * n * slices / per_unit
        demands = [Demand(round(w * units), d.profiles, d.requirement, d.label) for d, w in mix]
        return [model] * n, demands

    return build


def synthetic(model: GpuModel) -> Workload:
    """Memory sizes 5/12/30/70 GiB in equal numbers."""
    mix = [
        (Demand(1, requirement=Requirement(memory_mib=g * 1024), label=f"{g}GiB"), 1.0)
        for g in (5, 12, 30, 70)
    ]
    return scaled(model, mix)


def alibaba(model: GpuModel, data: Path) -> Workload:
    """GPU pods of the Alibaba openb trace, in the trace's proportions, as compute shares.

    A pod asking ``gpu_milli`` of one GPU needs the smallest profile with at least that
    share of the compute slices; a pod asking k whole GPUs counts as k full-GPU instances.
    """
    path = data / "alibaba-openb" / "openb_pod_list_default.csv"
    weights: Counter[int] = Counter()
    with path.open() as handle:
        for row in csv.DictReader(handle):
            gpus, milli = int(row["num_gpu"]), int(row["gpu_milli"])
            if gpus == 1:
                weights[milli] += 1
            elif gpus > 1:
                weights[1000] += gpus
    mix = [
        (Demand(1, requirement=Requirement(share=milli / 1000), label=f"{milli}m"), float(k))
        for milli, k in sorted(weights.items())
    ]
    return scaled(model, mix)


def mixed_fleet(models: Sequence[GpuModel]) -> Workload:
    """Equal numbers of each model; nine memory sizes from 3 to 38 GiB; ~60% of H100 slices."""
    sizes_gib = (3, 5, 8, 10, 12, 18, 20, 30, 38)
    mix = [
        (Demand(1, requirement=Requirement(memory_mib=g * 1024), label=f"{g}GiB"), 1.0)
        for g in sizes_gib
    ]
    per_unit = sum(d.candidates(models[0])[0].memory_slices for d, _ in mix)

    def build(n: int) -> tuple[list[GpuModel], list[Demand]]:
        gpus = [models[i % len(models)] for i in range(n)]
        units = 0.6 * n * (models[0].memory_slices or 8) / per_unit
        return gpus, [Demand(round(units), (), d.requirement, d.label) for d, _ in mix]

    return build


def parvagpu_mix(data: Path) -> list[tuple[str, Counter[int], int]]:
    """Per SLO scenario: instance sizes (g) and the GPUs ParvaGPU's own deployment used."""
    result = []
    for path in sorted((data / "parvagpu" / "deployment").glob("SLO*/*.csv")):
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        sizes = Counter(int(r["Instance size"]) for r in rows)
        gpus = len({(r["Num instance"], r["Num GPU"]) for r in rows})
        result.append((path.parent.name, sizes, gpus))
    return result


def parva_scaled(model: GpuModel, mixes: list[tuple[str, Counter[int], int]]) -> Workload:
    """The six ParvaGPU SLO deployments' instance sizes together, in their proportions."""
    total: Counter[int] = Counter()
    for _, sizes, _ in mixes:
        total.update(sizes)
    mix = [(Demand(1, (A100_SIZES[g],), label=A100_SIZES[g]), float(k)) for g, k in total.items()]
    return scaled(model, sorted(mix, key=lambda pair: pair[0].label))


def run_once(
    gpus: Sequence[GpuModel], demands: Sequence[Demand], *, method: str, time_limit_s: float
) -> tuple[Run, PackResult]:
    started = time.perf_counter()
    result = pack(gpus, demands, method=method, time_limit_s=time_limit_s)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    pack(gpus, demands, method=method, time_limit_s=time_limit_s)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    o = result.objective
    return Run(o.gpus, o.unmet, seconds, peak / 2**20, result.optimal), result


def measure(name: str, n: int, build: Workload, time_limit_s: float) -> Row:
    gpus, demands = build(n)
    exact, result = run_once(gpus, demands, method="exact", time_limit_s=time_limit_s)
    heuristic, _ = run_once(gpus, demands, method="heuristic", time_limit_s=time_limit_s)
    total = sum(d.count for d in demands)
    return Row(name, n, total, result.lower_bound_gpus, exact, heuristic)


def _quantile_rows(name: str, times: dict[str, list[float]]) -> list[str]:
    lines = []
    for outcome, values in times.items():
        if values:
            q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
            lines.append(
                f"| {name} | {outcome} | {len(values)} | "
                f"{statistics.median(values):.0f} | {q[18]:.0f} | {max(values):.0f} |"
            )
    return lines


def _wishes(model: GpuModel, rng: random.Random, samples: int) -> list[list[str]]:
    return [
        [rng.choice(model.gi_profiles).name for _ in range(rng.randint(1, 7))]
        for _ in range(samples)
    ]


def feasibility_latency(models: Sequence[GpuModel], samples: int) -> list[str]:
    """``plan_gpu``: a layout with placements, or InfeasibleError with the reasons and
    the nearest layouts that fit (the costly part)."""
    lines = [
        "| GPU model | outcome | calls | p50 µs | p95 µs | max µs |",
        "|---|---|---|---|---|---|",
    ]
    rng = random.Random(7)
    for model in models:
        times: dict[str, list[float]] = {"fits": [], "infeasible (with explanation)": []}
        for wanted in _wishes(model, rng, samples):
            started = time.perf_counter()
            try:
                plan_gpu(model, wanted)
                outcome = "fits"
            except InfeasibleError:
                outcome = "infeasible (with explanation)"
            times[outcome].append((time.perf_counter() - started) * 1e6)
        lines += _quantile_rows(model.key, times)
    return lines


def placement_latency(models: Sequence[GpuModel], samples: int) -> list[str]:
    """``place``: the exact placement search alone (what a scheduler calls per query)."""
    lines = [
        "| GPU model | outcome | calls | p50 µs | p95 µs | max µs |",
        "|---|---|---|---|---|---|",
    ]
    rng = random.Random(7)
    for model in models:
        by_name = {p.name: p for p in model.gi_profiles}
        times: dict[str, list[float]] = {"placed": [], "no placement exists": []}
        for wanted in _wishes(model, rng, samples):
            profiles = [by_name[n] for n in wanted]
            started = time.perf_counter()
            found = place(model, profiles)
            outcome = "placed" if found is not None else "no placement exists"
            times[outcome].append((time.perf_counter() - started) * 1e6)
        lines += _quantile_rows(model.key, times)
    return lines


def parva_table(model: GpuModel, mixes: list[tuple[str, Counter[int], int]]) -> list[str]:
    lines = [
        "| scenario | instances (g: count) | ParvaGPU GPUs | migctl exact GPUs | lower bound |",
        "|---|---|---|---|---|",
    ]
    for name, sizes, theirs in mixes:
        demands = [Demand(k, (A100_SIZES[g],)) for g, k in sorted(sizes.items())]
        result = pack([model] * (theirs + 8), demands, method="exact")
        mix = ", ".join(f"{g}g: {k}" for g, k in sorted(sizes.items()))
        lines.append(
            f"| {name} | {mix} | {theirs} | {result.objective.gpus} | {result.lower_bound_gpus} |"
        )
    return lines


def scale_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| workload | fleet GPUs | instances | lower bound | exact GPUs (unmet) | "
        "heuristic GPUs (unmet) | heuristic over exact % | exact s | heuristic s | "
        "exact peak MiB | heuristic peak MiB | exact proven optimal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e, h = r.exact, r.heuristic
        lines.append(
            f"| {r.workload} | {r.fleet} | {r.instances} | {r.bound} | {e.gpus_used} ({e.unmet}) "
            f"| {h.gpus_used} ({h.unmet}) | {r.gap_pct:.2f} | {e.seconds:.3f} | {h.seconds:.3f} "
            f"| {e.peak_mib:.1f} | {h.peak_mib:.1f} | {e.optimal} |"
        )
    return lines


def plot(rows: Sequence[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for workload in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == workload]
        xs = [r.fleet for r in mine]
        line = left.plot(xs, [r.exact.seconds for r in mine], "-o", label=f"{workload}: exact")
        color = line[0].get_color()
        left.plot(
            xs,
            [r.heuristic.seconds for r in mine],
            "--s",
            color=color,
            label=f"{workload}: heuristic",
        )
        right.plot(xs, [r.gap_pct for r in mine], "-o", color=color, label=workload)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="GPUs in fleet",
        ylabel="pack() wall seconds",
        title="Packing time (demand ~90% of the fleet)",
    )
    right.set(
        xscale="log",
        xlabel="GPUs in fleet",
        ylabel="heuristic GPUs over exact (%)",
        title="Heuristic quality",
    )
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--data", type=Path, default=None, help="holds parvagpu/, alibaba-openb/")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    catalog = load_catalog()
    h100, a100 = catalog.get("h100-80gb-hbm3"), catalog.get("a100-sxm4-80gb")
    data = args.data
    workloads: dict[str, Workload] = {"H100 synthetic 5/12/30/70 GiB": synthetic(h100)}
    mixed = [catalog.get(k) for k in ("h100-80gb-hbm3", "a100-sxm4-40gb", "a30-24gb")]
    workloads["H100+A100-40GB+A30 fleet, 9 sizes"] = mixed_fleet(mixed)
    mixes = parvagpu_mix(data) if data else []
    if data:
        workloads["H100 Alibaba openb shares"] = alibaba(h100, data)
        workloads["A100-80GB ParvaGPU mix"] = parva_scaled(a100, mixes)
    pack([h100], [Demand(1, ("1g.10gb",))], method="exact")  # warm up: imports, caches
    rows = []
    for name, build in workloads.items():
        for n in sizes:
            rows.append(measure(name, n, build, args.time_limit))
            print(scale_table(rows[-1:])[-1], flush=True)
    models = [
        catalog.get(k)
        for k in ("h100-80gb-hbm3", "a100-sxm4-40gb", "a30-24gb", "rtx-pro-6000-server")
    ]
    command = "PYTHONPATH=src python -m bench.planner_scale " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    latency = [
        "## Placement search (`place`) on an empty GPU, random wishes of 1-7 profiles",
        "",
        *placement_latency(models, args.samples),
        "",
        "## One-GPU feasibility (`plan_gpu`), the same kind of wishes",
        "",
        "A layout with placements, or an InfeasibleError that says why and lists the nearest "
        "layouts that fit (the explanation is the costly part).",
        "",
        *feasibility_latency(models, args.samples),
    ]
    write_report(
        args.out,
        rows,
        latency,
        parva_table(a100, mixes) if mixes else [],
        command.strip(),
    )
    print(f"wrote {args.out / 'planner_scale.md'} and {args.out / 'planner_scale.png'}")
    print(f"command: {command.strip()}")
    return 0


def write_report(
    out: Path, rows: Sequence[Row], latency: list[str], parva: list[str], command: str
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, out / "planner_scale.png")
    text = [
        "# Planner scale benchmark",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}, shared with other work. Timings are wall-clock of one `pack()` "
        "call (patterns, solve, per-GPU layouts with placements); peak MiB from tracemalloc in "
        "a second run.",
        "",
        "exact = pattern MILP (HiGHS; lexicographic: unmet, GPUs, memory slices, compute "
        "slices); heuristic = the better of best-fit decreasing and greedy pattern repetition, "
        "both over groups of identical GPUs (no solver). Lower bound = "
        "max(LP relaxation, memory-slice count) for the exact solution's served demand. Each "
        "workload's demand is its mix repeated until its smallest profiles fill ~90% of the "
        "fleet's memory slices (so MIG rounding and placement rules decide how many GPUs).",
        "",
        "![planner scale](planner_scale.png)",
        "",
        "## Packing",
        "",
        *scale_table(rows),
        "",
    ]
    if parva:
        text += [
            "## ParvaGPU's published A100-80GB deployments, re-packed",
            "",
            "Same instance sizes and counts as ParvaGPU's deployment CSVs; GPUs counted "
            "as distinct (node, GPU) pairs in them. (Choosing the instances too, jointly with "
            "the packing, saves GPUs: see parvagpu.md.)",
            "",
            *parva,
            "",
        ]
    text += [*latency, ""]
    (out / "planner_scale.md").write_text("\n".join(text))


if __name__ == "__main__":
    raise SystemExit(main())
