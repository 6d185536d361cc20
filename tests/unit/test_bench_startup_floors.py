"""bench/startup_floors.py: step timings come back from a fresh process, failures are reported."""

from __future__ import annotations

from bench.startup_floors import markdown, run_probe


def test_a_probe_reports_each_step_and_its_facts() -> None:
    probe = run_probe('import json; step("import json")\n_facts["answer"] = 42\n', repeat=2)
    assert list(probe["steps_median_ms"]) == ["import json"]
    assert probe["facts"] == {"answer": 42}
    assert probe["wall_median_ms"] > 0


def test_a_failing_probe_is_a_row_saying_why() -> None:
    probe = run_probe("raise SystemExit('no NVML here')", repeat=1)
    assert probe == {"error": "no NVML here"}
    text = markdown(
        {"machine": "m", "references": {"python -c pass": 10.0}, "probes": {"nvml": probe}}, "cmd"
    )
    assert "| nvml | failed | no NVML here | |" in text
    assert "| `python -c pass` | 10.0 | | |" in text
