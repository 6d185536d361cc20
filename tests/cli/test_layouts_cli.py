"""plan / apply / split / assert / export / recover through the CLI on the simulator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migctl.backends.select import open_sim_control
from migctl.cli.main import run


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(capsys, "-o", "json", *args)
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_offline_plan_for_a_split(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, "plan", "--model", "h100", "--split", "4")
    assert code == 0
    plans = data["plans"]
    assert isinstance(plans, list)
    creates = [op for op in plans[0]["ops"] if op["op"] == "create_gi"]
    assert [op["profile"] for op in creates] == ["1g.20gb"] * 4
    assert sorted(op["placement"] for op in creates) == ["0:2", "2:2", "4:2", "6:2"]


def test_impossible_split_names_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "plan", "--model", "h100", "--split", "8")
    assert code == 5
    assert "7" in err and "hint" in err


def test_sizing_by_need_gives_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, "plan", "--model", "h100", "--memory", "12GiB", "--count", "2")
    assert code == 0
    assert any("1g.20gb" in r and "12288" in r for r in data["reasons"])


def test_split_applies_and_a_second_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, first = as_json(capsys, "--sim", "dgx-h100", "split", "3", "-i", "0,1")
    assert code == 0 and first["executed"] == {"0": 7, "1": 7}
    code, second = as_json(capsys, "--sim", "dgx-h100", "split", "3", "-i", "0,1")
    assert code == 0 and second["noop"] is True
    code, listing = as_json(capsys, "--sim", "dgx-h100", "list", "-i", "0")
    devices = listing["gpus"][0]["mig_devices"]
    assert [d["ci_profile"] for d in devices] == ["2g.20gb"] * 3


def test_dry_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, "--sim", "h100-single", "apply", "--split", "7", "--dry-run")
    assert code == 0 and data["dry_run"] is True and data["executed"] == {}
    code, mode = as_json(capsys, "--sim", "h100-single", "mode", "show")
    assert mode["gpus"][0]["mig"]["current"] is False


def test_gpu_option_narrows_a_file_that_names_other_gpus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = str(Path(__file__).parents[2] / "examples" / "inference-h100.yaml")
    args = ("--sim", "dgx-h100", "apply", "-f", example, "-c", "inference", "--dry-run")
    code, only_0 = as_json(capsys, *args, "-i", "0")  # the file also names GPUs 6 and 7
    assert code == 0 and [p["gpu"] for p in only_0["plans"]] == [0]
    code, only_6 = as_json(capsys, *args, "-i", "6")
    creates = [op["profile"] for op in only_6["plans"][0]["ops"] if op["op"] == "create_gi"]
    assert code == 0 and [p["gpu"] for p in only_6["plans"]] == [6]
    assert creates == ["3g.40gb", "3g.40gb"]  # the later entry wins for GPU 6
    code, _, err = cli(capsys, *args, "-i", "9")
    assert code == 3 and "no GPU '9'" in err


def test_busy_instance_blocks_apply_with_exit_6(
    capsys: pytest.CaptureFixture[str], holder: subprocess.Popen[bytes]
) -> None:
    assert cli(capsys, "--sim", "h100-single", "split", "2")[0] == 0
    _, listing = as_json(capsys, "--sim", "h100-single", "list")
    uuid = listing["gpus"][0]["mig_devices"][0]["uuid"]
    open_sim_control("h100-single").attach(holder.pid, 0, uuid, 64)
    code, _, err = cli(capsys, "--sim", "h100-single", "split", "7")
    assert code == 6 and "busy" in err
    _, after = as_json(capsys, "--sim", "h100-single", "list")
    assert uuid in {d["uuid"] for d in after["gpus"][0]["mig_devices"]}


def test_forced_dry_run_names_the_process_it_would_disturb(
    capsys: pytest.CaptureFixture[str], holder: subprocess.Popen[bytes]
) -> None:
    assert cli(capsys, "--sim", "h100-single", "split", "2")[0] == 0
    _, listing = as_json(capsys, "--sim", "h100-single", "list")
    busy, idle = (d["uuid"] for d in listing["gpus"][0]["mig_devices"])
    open_sim_control("h100-single").attach(holder.pid, 0, busy, 64)
    code, out, _ = cli(
        capsys, "--sim", "h100-single", "apply", "--split", "7", "--force", "--dry-run"
    )
    assert code == 0 and "dry run" in out
    shown = " ".join(out.split())  # rich may wrap long lines
    assert f"{busy}: process {holder.pid}" in shown and "sleep" in shown
    assert f"{idle}: idle" in shown
    _, after = as_json(capsys, "--sim", "h100-single", "list")
    assert {d["uuid"] for d in after["gpus"][0]["mig_devices"]} == {busy, idle}


def test_pending_mode_exits_10(
    capsys: pytest.CaptureFixture[str], holder: subprocess.Popen[bytes]
) -> None:
    open_sim_control("h100-single").attach(holder.pid, 0, None, 64)
    code, _, err = cli(capsys, "--sim", "h100-single", "split", "2")
    assert code == 10 and str(holder.pid) in err + cli(capsys, "--sim", "h100-single", "status")[1]


def test_recover_without_journal(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, "--sim", "h100-single", "recover")
    assert code == 0 and data["mode"] == "nothing"


def test_demand_is_fitted_on_the_fewest_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(
        capsys, "--sim", "dgx-h100", "apply", "--demand", "4x12GiB,1x35GiB,2x1g.10gb", "-i", "all"
    )
    assert code == 0
    touched = [g for g, n in data["executed"].items() if n]
    assert len(touched) == 2


def test_cdi_spec_follows_every_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    spec = tmp_path / "cdi.yaml"
    monkeypatch.setenv("MIGCTL_CDI_PATH", str(spec))

    def devices() -> set[str]:
        return (
            {d["name"] for d in yaml.safe_load(spec.read_text())["devices"]}
            if spec.exists()
            else set()
        )

    assert cli(capsys, "--sim", "h100-single", "split", "2")[0] == 0
    assert len(devices()) == 4  # each device by <gpu>:<mig> and by UUID
    assert cli(capsys, "--sim", "h100-single", "split", "7")[0] == 0
    assert len(devices()) == 14
    assert cli(capsys, "--sim", "h100-single", "gi", "destroy", "--all")[0] == 0
    assert not spec.exists()


def killed_split(capsys: pytest.CaptureFixture[str], after_mutations: int) -> None:
    """`migctl split 7` killed by SIGKILL after some changes: its journal stays behind."""
    import os
    import sys

    assert cli(capsys, "--sim", "h100-single", "split", "2")[0] == 0
    control = open_sim_control("h100-single")
    control.inject_fault("nvml@mutation", "KILL", skip=after_mutations)
    child = subprocess.run(
        [sys.executable, "-m", "migctl", "--sim", "h100-single", "split", "7"],
        env=os.environ.copy(),
        check=False,
        capture_output=True,
    )
    control.clear_faults()
    assert child.returncode == -9, child.stderr


@pytest.mark.parametrize(("flags", "word"), [((), "completed"), (("--rollback",), "rolled back")])
def test_recover_says_what_it_did(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], word: str
) -> None:
    killed_split(capsys, after_mutations=3)
    code, out, err = cli(capsys, "--sim", "h100-single", "recover", *flags)
    assert code == 0, err
    assert "found an apply started" in out and out.rstrip().endswith(word)
    assert "rollbackd" not in out
