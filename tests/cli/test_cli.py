"""CLI behaviour beyond the scenarios: help, exit codes, catalog, capture, sim verbs, output."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from migctl.cli.main import run

NEEDS_NO_DRIVER = pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="an NVIDIA driver is installed here"
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_help_lists_verbs_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for verb in ("list", "status", "mode", "profiles", "gi", "ci", "catalog", "sim"):
        assert verb in out
    assert "Exit codes" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sim", "dgx-h100", "gi", "create"], 2),  # missing argument
        (["--sim", "dgx-h100", "frobnicate"], 2),  # unknown verb
        (["--sim", "dgx-h100", "-o", "yaml", "list"], 2),  # bad choice
        (["--sim", "no-such-machine", "list"], 3),
        (["--sim", "dgx-h100", "list", "-i", "9"], 3),
        (["--sim", "dgx-h100", "list", "-i", "0,,1"], 2),
        (["--sim", "dgx-h100", "gi", "create", "9"], 2),  # 8 GPUs: -i required
        (["--sim", "dgx-h100", "gi", "create", "9:x", "-i", "0"], 2),
        (["--sim", "dgx-h100", "gi", "destroy", "-i", "0"], 2),  # neither --gi nor --all
        (["--sim", "dgx-h100", "sim", "fault", "add", "nvmlDeviceCreate", "BOGUS"], 2),
        (["--sim", "dgx-h100", "sim", "permissions", "everyone"], 2),
        (["catalog", "no-such-gpu"], 3),
        (["catalog", "rtx-4090"], 7),
        pytest.param(["list"], 9, marks=NEEDS_NO_DRIVER),  # no simulator chosen
    ],
)
def test_bad_input_gets_message_and_exit_code(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: int
) -> None:
    code, _, err = cli(capsys, *args)
    assert code == expected
    assert err.strip(), "every failure explains itself on stderr"


@NEEDS_NO_DRIVER
def test_no_driver_message_points_to_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "list")
    assert code == 9
    assert "no NVIDIA driver" in err and "--sim" in err


def test_non_mig_gpu_message_lists_mig_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "catalog", "NVIDIA GeForce RTX 4090")
    assert code == 7
    assert "MIG is not supported on NVIDIA GeForce RTX 4090" in err
    assert "h100-80gb-hbm3" in err


def test_catalog_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "-o", "json", "catalog")
    assert code == 0
    data = json.loads(out)
    assert data["schema"] == "migctl/v2" and data["kind"] == "Catalog"
    mig = [m for m in data["models"] if m["mig"]]
    assert len(mig) == 22
    assert {m["key"]: m["trust"] for m in mig}["h200-141gb"] == "verified"
    code, out, _ = cli(capsys, "catalog", "b200")
    assert code == 0 and "UNVERIFIED" not in out and "(unverified)" in out
    code, out, _ = cli(capsys, "-o", "json", "catalog", "H100-80GB")
    model = json.loads(out)
    three_g = next(p for p in model["gi_profiles"] if p["name"] == "3g.40gb")
    assert three_g["id"] == 9 and three_g["placements"] == [
        {"start": 0, "size": 4},
        {"start": 4, "size": 4},
    ]


def test_catalog_capture_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A captured GPU model loads back as a catalog file and as a simulator machine's GPU."""
    path = tmp_path / "gpu.json"
    code, _, _ = cli(
        capsys, "--sim", "h200-single", "catalog", "capture", "-i", "0", "-f", str(path)
    )
    assert code == 0
    document = json.loads(path.read_text())
    captured = document["models"][0]
    assert captured["trust"] == "captured"
    assert [p["name"] for p in captured["gi_profiles"]][:3] == ["1g.18gb", "2g.35gb", "3g.71gb"]
    captured["key"] = "my-new-gpu"
    captured["aliases"] = []
    path.write_text(json.dumps(document))
    machine = tmp_path / "node.yaml"
    machine.write_text(f"name: lab\ngpus:\n  - model: {path}\n    count: 2\n")
    code, out, _ = cli(capsys, "--sim", str(machine), "-o", "json", "list")
    assert code == 0 and len(json.loads(out)["gpus"]) == 2
    os.environ["MIGCTL_CATALOG"] = str(path)
    try:
        code, out, _ = cli(capsys, "-o", "json", "catalog", "my-new-gpu")
        assert code == 0 and json.loads(out)["trust"] == "captured"
    finally:
        del os.environ["MIGCTL_CATALOG"]


def test_catalog_check_on_simulator_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--sim", "mixed-node", "-o", "json", "catalog", "check")
    assert code == 0
    statuses = {g["gpu_index"]: g["status"] for g in json.loads(out)["gpus"]}
    assert statuses[0] == "checked" and statuses[5] == "no-mig"


def test_status_draws_the_slice_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--sim", "h100-single", "mode", "enable")[0] == 0
    assert cli(capsys, "--sim", "h100-single", "gi", "create", "3g.40gb:4,2g.20gb:0", "-C")[0] == 0
    code, out, _ = cli(capsys, "--sim", "h100-single", "status")
    assert code == 0
    assert "slice" in out and "GI 2 3g.40gb" in out and "free" in out
    assert out.count("MIG-") == 2


def test_profiles_show_free_counts_and_ci_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ("--sim", "h100-single", "-o", "json")
    cli(capsys, "--sim", "h100-single", "mode", "enable")
    cli(capsys, "--sim", "h100-single", "gi", "create", "3g.40gb:0")
    code, out, _ = cli(capsys, *sim, "profiles")
    frees = {p["profile"]["name"]: p["free"] for p in json.loads(out)["gpus"][0]["gi_profiles"]}
    assert frees["3g.40gb"] == 1 and frees["4g.40gb"] == 0 and frees["1g.10gb"] == 3
    code, out, _ = cli(capsys, *sim, "profiles", "--ci", "1")
    assert code == 0
    names = [p["profile"]["name"] for p in json.loads(out)["profiles"]]
    assert names == ["1c.3g.40gb", "2c.3g.40gb", "3g.40gb"]


def test_sim_reboot_wipes_instances(capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "--sim", "h100-single", "mode", "enable")
    cli(capsys, "--sim", "h100-single", "gi", "create", "7g.80gb", "-C")
    assert cli(capsys, "--sim", "h100-single", "sim", "reboot")[0] == 0
    _, out, _ = cli(capsys, "--sim", "h100-single", "-o", "json", "gi", "list")
    assert json.loads(out)["gpu_instances"] == []


def test_console_script_runs_in_a_fresh_process(tmp_path: Path) -> None:
    """Consecutive processes see one simulated machine."""
    env = {**os.environ, "MIGCTL_SIM": "h100-single"}
    first = subprocess.run(
        [sys.executable, "-m", "migctl", "mode", "enable"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [sys.executable, "-m", "migctl", "-o", "json", "mode", "show"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert json.loads(second.stdout)["gpus"][0]["mig"] == {"current": True, "pending": True}
