"""The ParvaGPU benchmark's core on a tiny slice: data reading, rules, solver, checker, report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench import parvagpu
from bench.parvagpu_check import check_deployment
from bench.parvagpu_data import (
    Dataset,
    ProfilePoint,
    Scenario,
    Segment,
    Service,
    load_dataset,
    load_deployment,
)
from bench.parvagpu_solve import PARVAGPU_LAYOUTS, Rules, candidates, gpu_layouts, solve
from migctl.catalog import load_catalog
from migctl.planner import place

DATA = Path(__file__).parents[1] / "data" / "bench" / "parvagpu"
A100 = load_catalog().get("a100-sxm4-80gb")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset(DATA)


def test_reads_like_parvagpu(data: Dataset) -> None:
    assert data.models == ("bert", "mobilenetv2", "resnet50")
    first = data.scenario("SLO1")
    by_model = {s.model: s for s in first.services}
    assert by_model["resnet50"].slo_ms == 204  # 204.5 truncated, like atoi
    assert by_model["mobilenetv2"].rate == 677
    point = next(p for p in data.points("bert") if (p.size, p.batch, p.procs) == (1, 1, 2))
    assert point.throughput == pytest.approx(2 * 52.42)
    assert point.latency_ms == pytest.approx(19.0)


def test_absent_models_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "prof_data").mkdir()
    (tmp_path / "SLO").mkdir()
    for name in ("b", "a"):
        (tmp_path / "prof_data" / f"{name}.csv").write_text(
            "Mig instance,Batch size,Workload Number,Throughput,Latency\n1,1,1,10,0.01\n"
        )
    (tmp_path / "SLO" / "SLO_req_rate.csv").write_text("5,N/A\n")
    (tmp_path / "SLO" / "SLO_latency.csv").write_text("100,N/A\n")
    loaded = load_dataset(tmp_path)
    assert loaded.models == ("a", "b")
    assert [s.model for s in loaded.scenarios[0].services] == ["a"]


def test_latency_rule_is_strict(data: Dataset) -> None:
    at_limit = ProfilePoint("m", 1, 1, 1, 50.0, 0.045)  # 45 ms = 0.9 x 100 / 2: refused
    below = ProfilePoint("m", 2, 1, 1, 50.0, 0.0449)
    unmeasured = ProfilePoint("m", 3, 1, 1, 0.0, 0.0)
    toy = Dataset(("m",), {"m": (at_limit, below, unmeasured)}, ())
    assert set(candidates(toy, Service("m", 1.0, 100), 5)) == {2}
    everything = candidates(data, Service("bert", 1.0, 10**6), 5)
    assert set(everything) == {1, 2, 3, 4, 7}
    assert all(p.procs == 1 for p in candidates(data, Service("bert", 1.0, 10**6), 1).values())
    assert max(p.procs for p in everything.values()) > 1  # MPS helps somewhere


def test_tiny_scenarios_solve_legally(data: Dataset) -> None:
    for scenario in data.scenarios:
        mps = solve(data, scenario, A100)
        report = check_deployment(data, scenario, mps.segments, A100)
        assert report.ok, report.violations
        assert mps.optimal and mps.gpus >= max(mps.lp_bound, mps.slice_bound)
        assert all(s.start is not None for s in mps.segments)
        mig = solve(data, scenario, A100, Rules(max_procs=1))
        assert check_deployment(data, scenario, mig.segments, A100, max_procs=1).ok
        assert mig.gpus >= mps.gpus  # fewer choices never need fewer GPUs
        narrow = solve(data, scenario, A100, Rules(layouts=PARVAGPU_LAYOUTS))
        assert narrow.gpus >= mps.gpus


def test_parvagpu_slice_passes_the_checker(data: Dataset) -> None:
    for scenario in data.scenarios:
        path = DATA / "deployment" / scenario.name / f"{scenario.name}_ParvaGPU_deploy.csv"
        report = check_deployment(data, scenario, load_deployment(path), A100)
        assert report.ok, report.violations
        assert solve(data, scenario, A100).gpus <= report.gpus


def _toy(rate: float) -> tuple[Dataset, Scenario]:
    points = (
        ProfilePoint("m", 1, 1, 1, 10.0, 0.001),
        ProfilePoint("m", 7, 1, 1, 100.0, 0.001),
        ProfilePoint("m", 7, 2, 1, 500.0, 1.0),  # fast but breaks the SLO
    )
    return Dataset(("m",), {"m": points}, ()), Scenario("T", (Service("m", rate, 100),))


def test_joint_choice_beats_smallest_slices() -> None:
    toy, scenario = _toy(75.0)  # 8 x 1g (2 GPUs) or 1 x 7g (1 GPU)
    result = solve(toy, scenario, A100)
    assert result.gpus == 1 and [s.size for s in result.segments] == [7]
    small, small_scenario = _toy(30.0)  # 3 x 1g (3 slices) beats 1 x 7g on slices
    assert sorted(s.size for s in solve(small, small_scenario, A100).segments) == [1, 1, 1]


def test_checker_finds_each_violation() -> None:
    toy, scenario = _toy(20.0)
    good = [Segment(0, "m", 1, 1, 1, 0), Segment(0, "m", 1, 1, 1, 1)]
    assert check_deployment(toy, scenario, good, A100).ok
    cases = {
        "rate": good[:1],
        "latency": [Segment(0, "m", 7, 2, 1, 0)],
        "overlap": [Segment(0, "m", 1, 1, 1, 0), Segment(0, "m", 1, 1, 1, 0)],
        "foreign model": [*good, Segment(1, "x", 1, 1, 1, 0)],
        "unmeasured": [*good, Segment(1, "m", 2, 1, 1, 0)],
        "processes": [*good, replace(good[0], gpu=1, procs=6)],
    }
    for name, segments in cases.items():
        assert not check_deployment(toy, scenario, segments, A100).ok, name


def test_layouts_are_legal_and_include_two_3g() -> None:
    layouts = gpu_layouts(A100, Rules())
    assert (3, 3) in layouts and (7,) in layouts
    names = {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}
    by_name = {p.name: p for p in A100.gi_profiles}
    for layout in layouts:
        assert place(A100, [by_name[names[size]] for size in layout]) is not None


def test_report_is_written(tmp_path: Path) -> None:
    assert parvagpu.main(["--data", str(DATA), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "parvagpu.md").read_text()
    assert "| SLO1 |" in text and "| SLO2 |" in text
    assert (tmp_path / "parvagpu.png").stat().st_size > 0
    rows = (tmp_path / "parvagpu" / "SLO1_migctl_mps.csv").read_text().splitlines()
    assert rows[0].startswith("gpu,start") and len(rows) > 1
