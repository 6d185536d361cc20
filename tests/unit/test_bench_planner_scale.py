"""The planner-scale benchmark end to end on tiny sizes and the tiny data slices."""

from __future__ import annotations

from pathlib import Path

from bench import planner_scale

DATA = Path(__file__).parents[1] / "data" / "bench"


def test_small_run_writes_every_section(tmp_path: Path) -> None:
    argv = ["--sizes", "10,20", "--samples", "20", "--out", str(tmp_path), "--data", str(DATA)]
    assert planner_scale.main(argv) == 0
    text = (tmp_path / "planner_scale.md").read_text()
    for section in ("## Packing", "re-packed", "Placement search", "One-GPU feasibility"):
        assert section in text
    assert "H100 Alibaba openb shares | 20 |" in text
    assert "| SLO1 |" in text  # the tiny ParvaGPU deployments were re-packed
    assert (tmp_path / "planner_scale.png").stat().st_size > 0


def test_without_data_the_trace_workloads_are_skipped(tmp_path: Path) -> None:
    assert planner_scale.main(["--sizes", "10", "--samples", "5", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "planner_scale.md").read_text()
    assert "Alibaba" not in text and "re-packed" not in text
