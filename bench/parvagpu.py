"""Benchmark: ParvaGPU's (SC'24) six serving scenarios, migctl's joint MILP vs ParvaGPU.

Why this exists: planning is where migctl should beat other work, measured on published
data with the publisher's own rules. For each scenario this solves the serving layout
(``bench.parvagpu_solve``) with MPS (1-5 processes), without MPS (MIG only), and with
only ParvaGPU's 11 GPU layouts; checks migctl's and ParvaGPU's deployments with the
independent checker (``bench.parvagpu_check``); writes ``parvagpu.md``, ``parvagpu.png``
and each migctl deployment as CSV (NVML placements) under ``--out``.

Run: ``PYTHONPATH=src python -m bench.parvagpu --data ../shared/data/parvagpu``
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.parvagpu_check import CheckReport, check_deployment
from bench.parvagpu_data import (
    Dataset,
    Scenario,
    Segment,
    deployment_slots,
    load_dataset,
    load_deployment,
)
from bench.parvagpu_solve import PARVAGPU_LAYOUTS, Rules, Solution, size_mix, solve
from bench.report import command, machine, table
from migctl.catalog import load_catalog
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GpuModel, Placement

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "mps": Rules(max_procs=5),
    "mig-only": Rules(max_procs=1),
    "parvagpu-layouts": Rules(max_procs=5, layouts=PARVAGPU_LAYOUTS),
}


@dataclass
class ScenarioResult:
    scenario: Scenario
    theirs: CheckReport
    their_mix: str
    literal_bad: int  # GPUs whose Placement column is not a legal NVML layout
    solutions: dict[str, Solution]
    checks: dict[str, CheckReport]


def literal_placement_failures(path: Path, model: GpuModel) -> int:
    """GPUs of a ParvaGPU file that would be illegal if 'Placement' were an NVML start."""
    names = {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}
    bad = 0
    for items in deployment_slots(path).values():
        current: list[Occupant] = []
        for start, size in items:
            profile = model.gi_profile(names[size])
            assert profile is not None
            placement = Placement(start, profile.memory_slices)
            if placement_refusal(model, profile, placement, current) is not None:
                bad += 1
                break
            current.append(Occupant(profile, placement))
    return bad


def run_scenario(
    data: Dataset, directory: Path, scenario: Scenario, model: GpuModel, time_limit_s: float
) -> ScenarioResult:
    path = directory / "deployment" / scenario.name / f"{scenario.name}_ParvaGPU_deploy.csv"
    theirs = load_deployment(path)
    solutions = {
        name: solve(data, scenario, model, rules, time_limit_s) for name, rules in VARIANTS.items()
    }
    checks = {
        name: check_deployment(
            data, scenario, s.segments, model, max_procs=VARIANTS[name].max_procs
        )
        for name, s in solutions.items()
    }
    return ScenarioResult(
        scenario,
        check_deployment(data, scenario, theirs, model),
        size_mix(theirs),
        literal_placement_failures(path, model),
        solutions,
        checks,
    )


def write_deployment(path: Path, segments: Sequence[Segment], data: Dataset) -> None:
    throughput = {
        (p.model, p.size, p.batch, p.procs): p.throughput
        for pts in data.profiles.values()
        for p in pts
    }
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gpu", "start", "profile_size_g", "model", "batch", "procs", "req_per_s"])
        for s in segments:
            rate = throughput[(s.model, s.size, s.batch, s.procs)]
            writer.writerow([s.gpu, s.start, s.size, s.model, s.batch, s.procs, f"{rate:.1f}"])


def _fmt(solution: Solution, check: CheckReport) -> str:
    mark = "" if check.ok else " ✗"
    return f"{solution.gpus} ({solution.slices}){mark}"


def main_table(results: Sequence[ScenarioResult]) -> list[str]:
    headers = [
        "scenario",
        "models",
        "ParvaGPU GPUs (slices)",
        "migctl GPUs (slices)",
        "lower bound GPUs: max(LP, slices)",
        "proven optimal",
        "solve s",
        "MIG only, no MPS: GPUs (slices)",
        "migctl on ParvaGPU's 11 layouts: GPUs (slices)",
        "checker: ParvaGPU / migctl",
    ]
    rows = []
    for r in results:
        mps = r.solutions["mps"]
        checks = "ok" if r.theirs.ok else f"{len(r.theirs.violations)} violations"
        checks += " / " + ("ok" if all(c.ok for c in r.checks.values()) else "VIOLATIONS")
        rows.append(
            [
                r.scenario.name,
                len(r.scenario.services),
                f"{r.theirs.gpus} ({r.theirs.slices})",
                _fmt(mps, r.checks["mps"]),
                f"{max(mps.lp_bound, mps.slice_bound)} ({mps.lp_bound}, {mps.slice_bound})",
                mps.optimal,
                f"{mps.seconds:.2f}",
                _fmt(r.solutions["mig-only"], r.checks["mig-only"]),
                _fmt(r.solutions["parvagpu-layouts"], r.checks["parvagpu-layouts"]),
                checks,
            ]
        )
    return table(headers, rows)


def detail_table(results: Sequence[ScenarioResult]) -> list[str]:
    headers = [
        "scenario",
        "ParvaGPU instances",
        "migctl instances (MPS)",
        "migctl instances (MIG only)",
        "ParvaGPU GPUs whose Placement column is not an NVML layout",
        "MIG-only lower bound, optimal, s",
    ]
    rows = []
    for r in results:
        mig = r.solutions["mig-only"]
        rows.append(
            [
                r.scenario.name,
                r.their_mix,
                size_mix(r.solutions["mps"].segments),
                size_mix(mig.segments),
                f"{r.literal_bad} of {r.theirs.gpus}",
                f"{max(mig.lp_bound, mig.slice_bound)}, {mig.optimal}, {mig.seconds:.2f}",
            ]
        )
    return table(headers, rows)


def plot(results: Sequence[ScenarioResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.scenario.name for r in results]
    series = {
        "ParvaGPU (published)": [r.theirs.gpus for r in results],
        "migctl (MPS 1-5)": [r.solutions["mps"].gpus for r in results],
        "migctl MIG only": [r.solutions["mig-only"].gpus for r in results],
        "lower bound": [
            max(r.solutions["mps"].lp_bound, r.solutions["mps"].slice_bound) for r in results
        ],
    }
    figure, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.2
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - 1.5) * width for j in range(len(names))]
        bars = axis.bar(xs, values, width, label=label)
        axis.bar_label(bars, fontsize=7)
    axis.set_xticks(range(len(names)), names)
    axis.set(ylabel="A100 80GB GPUs", title="ParvaGPU scenarios: GPUs to serve every SLO")
    axis.legend(fontsize=8)
    axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def violations_text(results: Sequence[ScenarioResult]) -> list[str]:
    lines = []
    for r in results:
        for who, report in [("ParvaGPU", r.theirs), *r.checks.items()]:
            lines += [f"* {r.scenario.name} {who}: {v}" for v in report.violations]
    return lines or ["None: every deployment above passes every check."]


def write_report(
    out: Path, results: Sequence[ScenarioResult], model: GpuModel, cmd: str, source: str
) -> None:
    plot(results, out / "parvagpu.png")
    text = [
        "# ParvaGPU (SC'24) serving layouts: migctl vs the published deployments",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine()}  ",
        f"Data: ParvaGPU repository {source} (MIT); GPU model: `{model.key}` "
        "(the catalog's A100 80GB PCIe entry has the same geometry).",
        "",
        "Rules, the same as ParvaGPU's for like-for-like: a segment is one MIG instance running "
        "one model with one batch size and 1-5 MPS processes; it serves Throughput x processes "
        "requests/s; it is allowed when its batch latency (ms) < 0.9 x int(SLO) / 2. migctl "
        "chooses instances and packs them in one integer program (HiGHS): per model and size the "
        "allowed configuration with the most throughput; GPU layouts = migctl.planner's maximal "
        "legal A100 layouts (12, including 3g+3g, which ParvaGPU never creates); minimise GPUs, "
        "then compute slices. Slices = compute slices (g) of all instances. Lower bound = "
        "max(LP relaxation, each model's fewest slices summed / 7), shown as (LP, slices). "
        "Every deployment is re-checked by an independent checker (profile rows, latency rule, "
        "request rates, and each GPU's NVML placements one by one); ✗ marks a failure.",
        "",
        "![GPUs per scenario](parvagpu.png)",
        "",
        *main_table(results),
        "",
        "## Instances and ParvaGPU's placements",
        "",
        "ParvaGPU's `Placement` column is an index into its own 7-slot array (its scripts "
        "create fixed `nvidia-smi mig -cgi` configurations and let the driver place them), so "
        "ParvaGPU's GPUs are checked as multisets (some legal NVML layout must hold them). Read "
        "literally as NVML starts, most of its GPUs would overlap; the column below counts them "
        "for information only.",
        "",
        *detail_table(results),
        "",
        "## Violations found",
        "",
        *violations_text(results),
        "",
        "migctl's deployments (GPU, NVML start, size, model, batch, processes, req/s) are in "
        "`parvagpu/SLO*_migctl_{mps,mig-only}.csv`.",
        "",
    ]
    (out / "parvagpu.md").write_text("\n".join(text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the ParvaGPU directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--gpu-model", default="a100-sxm4-80gb")
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args(argv)
    model = load_catalog().get(args.gpu_model)
    data = load_dataset(args.data)
    results = []
    for scenario in data.scenarios:
        results.append(run_scenario(data, args.data, scenario, model, args.time_limit))
        r = results[-1]
        print(
            f"{scenario.name}: ParvaGPU {r.theirs.gpus} GPUs, migctl "
            f"{r.solutions['mps'].gpus}, MIG only {r.solutions['mig-only'].gpus}",
            flush=True,
        )
    deployments = args.out / "parvagpu"
    deployments.mkdir(parents=True, exist_ok=True)
    for r in results:
        for name in ("mps", "mig-only"):
            path = deployments / f"{r.scenario.name}_migctl_{name}.csv"
            write_deployment(path, r.solutions[name].segments, data)
    source_file = args.data / "SOURCE_COMMIT"
    source = source_file.read_text().strip()[:12] if source_file.is_file() else "(unknown commit)"
    write_report(args.out, results, model, command("bench.parvagpu", argv), source)
    print(f"wrote {args.out / 'parvagpu.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
