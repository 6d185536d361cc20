"""Errors said once, and saying what is really wrong.

A failed apply printed its error three times (a WARNING log line, ``failed:``, ``error:``);
two ``+me`` instances were refused as "do not fit (occupied: nothing)"; a profile on a GPU
without MIG gave an empty ``hint: profiles:``; a pending MIG change on a VM (which cannot
reset its GPU) said "stop the processes named above" with none named; a demand too big for
the GPUs given said "the 1 GPU(s) are full" instead of how many it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from migctl.cli.main import run


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def migctl_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """A real process: log lines reach stderr as a user would see them."""
    return subprocess.run(
        [sys.executable, "-m", "migctl", *argv],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("read_only", [False, True], ids=["driver-error", "read-only"])
def test_a_failed_apply_states_its_error_once(read_only: bool) -> None:
    base = ["--sim", "h100-single"]
    assert migctl_process(*base, "mode", "enable", "-i", "0").returncode == 0
    fault = ["sim", "fault", "add", "nvmlDeviceCreateGpuInstanceWithPlacement", "UNKNOWN"]
    if not read_only:
        assert migctl_process(*base, *fault).returncode == 0
    flags = ["--read-only"] if read_only else []
    done = migctl_process(*base, *flags, "split", "7", "-i", "0")
    assert done.returncode == (8 if read_only else 12)
    shown = done.stdout + done.stderr
    assert shown.count("cannot create 1g.10gb at 0:1") == 1, shown
    assert "WARNING" not in shown
    assert "error: GPU 0" in done.stderr
    assert "rollback: the state before the apply was restored" in done.stdout


def test_two_plus_me_instances_are_refused_for_the_real_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--sim", "h100-single")
    assert run([*base, "mode", "enable", "-i", "0"]) == 0
    code, _, err = cli(capsys, *base, "gi", "create", "1g.10gb+me,1g.10gb+me", "-i", "0")
    assert code == 5
    assert "occupied: nothing" not in err
    assert "1g.10gb+me allows at most 1 per GPU (2 would exist)" in err


def test_a_profile_on_a_gpu_without_mig_says_the_gpu_has_no_mig(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli(capsys, "--sim", "l40s-node", "gi", "create", "1g.10gb", "-i", "0")
    assert code == 7
    assert "profiles: \n" not in err and not err.rstrip().endswith("profiles:")
    assert "GPU 0 (NVIDIA L40S) does not support MIG" in err


@pytest.mark.parametrize("verb", ["split", "plan"])
def test_an_intent_for_gpus_without_mig_is_refused(
    capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """Before: `split 2 -i 5` on the L40S said "already matches: nothing to do", exit 0."""
    args = ["split", "2", "-i", "5"] if verb == "split" else ["plan", "--split", "2", "-i", "5"]
    code, _, err = cli(capsys, "--sim", "mixed-node", *args)
    assert code == 7
    assert "GPU 5 (NVIDIA L40S) has no MIG" in err


@pytest.mark.parametrize("verb", ["apply", "mode"])
def test_a_vm_waiting_for_a_reboot_says_reboot(
    capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    args = ["split", "2", "-i", "0"] if verb == "apply" else ["mode", "enable", "-i", "0"]
    code, out, err = cli(capsys, "--sim", "a100-vm", *args)
    assert code == 10
    assert "processes named above" not in err
    assert "reboot" in err.split("hint:")[1]
    assert (out + err).count("pass-through VM") == 1, "the reason is said once"


def test_a_change_waiting_for_processes_names_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ("--sim", "h100-single")
    holder = subprocess.Popen(["sleep", "60"])
    try:
        assert run([*base, "sim", "attach", "--pid", str(holder.pid), "--gpu", "0"]) == 0
        code, _, err = cli(capsys, *base, "mode", "enable", "-i", "0")
    finally:
        holder.kill()
        holder.wait()
    assert code == 10
    assert str(holder.pid) in err.split("hint:")[0], "the message names the processes"
    assert "stop" in err.split("hint:")[1]


@pytest.mark.parametrize(
    ("demand", "needed"),
    [("8x1g.10gb", 2), ("2x1g.10gb+me", 2), ("3x40GiB", 3), ("15x1g.10gb,1x3g.40gb", 3)],
)
def test_a_demand_too_big_says_how_many_gpus_it_needs(
    capsys: pytest.CaptureFixture[str], demand: str, needed: int
) -> None:
    code, _, err = cli(capsys, "plan", "--model", "h100", "--demand", demand)
    assert code == 5
    assert "are full" not in err
    assert f"needs {needed} x NVIDIA H100 80GB HBM3" in err
    assert f"--gpus {needed}" in err
    code, out, _ = cli(capsys, "-o", "json", "plan", "--model", "h100", "--gpus", str(needed),
                       "--demand", demand)  # fmt: skip
    assert code == 0, "and that many are indeed enough"
    assert json.loads(out)["plans"]
    fewer = ["plan", "--model", "h100", "--gpus", str(needed - 1), "--demand", demand]
    assert cli(capsys, *fewer)[0] == 5, "and no fewer"
