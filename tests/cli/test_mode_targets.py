"""`mode enable|disable` checks every GPU it is asked to change before changing any.

`-i all` (or no `-i`) means every MIG-capable GPU, and names the GPUs it passes over; a GPU
without MIG named with `-i` refuses the whole request, and nothing is switched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.conftest import run_cli

MIXED = "mixed-node"  # GPUs 0-4: A100, A100, H100, H100, A30; GPU 5: L40S (no MIG)


def modes(capsys: pytest.CaptureFixture[str]) -> dict[int, Any]:
    code, out, err = run_cli(capsys, "-o", "json", "--sim", MIXED, "mode", "show")
    assert code == 0, err
    return {g["index"]: (g["mig"] or {}).get("current") for g in json.loads(out)["gpus"]}


@pytest.mark.parametrize("selection", [("-i", "all"), ()], ids=["-i all", "no -i"])
def test_all_means_every_mig_capable_gpu(
    capsys: pytest.CaptureFixture[str], selection: tuple[str, ...]
) -> None:
    code, out, err = run_cli(capsys, "--sim", MIXED, "mode", "enable", *selection)
    assert code == 0, err
    assert "GPU 5 (NVIDIA L40S): no MIG support, skipped" in out
    assert modes(capsys) == {0: True, 1: True, 2: True, 3: True, 4: True, 5: None}
    code, out, err = run_cli(capsys, "-o", "json", "--sim", MIXED, "mode", "disable", *selection)
    assert code == 0, err
    data = json.loads(out)
    assert [c["gpu"] for c in data["changes"]] == [0, 1, 2, 3, 4]
    assert data["skipped"] == [{"gpu_index": 5, "name": "NVIDIA L40S", "reason": "no MIG support"}]


@pytest.mark.parametrize("selection", ["0,5", "5", "2,3,5"])
def test_a_named_gpu_without_mig_refuses_before_any_change(
    capsys: pytest.CaptureFixture[str], selection: str
) -> None:
    code, out, err = run_cli(capsys, "--sim", MIXED, "mode", "enable", "-i", selection)
    assert code == 7, out + err
    assert "GPU 5 (NVIDIA L40S)" in err and "nothing was changed" in err
    assert modes(capsys) == {0: False, 1: False, 2: False, 3: False, 4: False, 5: None}


def test_a_machine_without_mig_gpus_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--sim", "l40s-node", "mode", "enable", "-i", "all")
    assert code == 7 and "no GPU on this machine supports MIG" in err
