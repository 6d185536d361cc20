"""Memory sizes on the command line: one reading for every verb that takes one."""

from __future__ import annotations

import json

import pytest

from migctl.cli.main import run


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    code = run(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


@pytest.mark.parametrize("spelling", ["12G", "12g", "12GiB", "12288", "12288MiB", "12288M"])
def test_plan_memory_reads_every_spelling_alike(
    capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    reference = _json(capsys, "-o", "json", "plan", "--model", "h100", "--memory", "12GiB")
    same = _json(capsys, "-o", "json", "plan", "--model", "h100", "--memory", spelling)
    assert same == reference


def test_plan_demand_and_lease_read_sizes_like_plan_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    by_unit = _json(capsys, "-o", "json", "plan", "--model", "h100", "--demand", "2x12GiB")
    by_letter = _json(capsys, "-o", "json", "plan", "--model", "h100", "--demand", "2x12G")
    assert by_letter["plans"] == by_unit["plans"]


def test_a_bad_size_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = run(["plan", "--model", "h100", "--memory", "12 parsecs"])
    err = capsys.readouterr().err
    assert code == 2
    assert "12 parsecs" in err and "12GiB" in err


def test_simulated_processes_take_sizes_too(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    base = ("--sim", "h100-single")
    assert run([*base, "split", "7", "-i", "0"]) == 0
    listing = _json(capsys, *base, "-o", "json", "list")
    uuid = listing["gpus"][0]["mig_devices"][0]["uuid"]  # type: ignore[index]
    assert (
        run([*base, "sim", "attach", "--pid", str(os.getpid()), "-d", uuid, "--memory", "2G"]) == 0
    )
    after = _json(capsys, *base, "-o", "json", "list")
    device = after["gpus"][0]["mig_devices"][0]  # type: ignore[index]
    assert device["memory_used_mib"] == 2048
