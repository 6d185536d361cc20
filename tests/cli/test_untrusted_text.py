"""Text from other people never reaches a terminal as control sequences or Rich markup.

A job name is refused at input unless printable; whatever is already stored (a lease row written
by an older migctl, or straight into the database), process command lines from /proc and hook
output are escaped by `lease list`, `status`, `list`, `top` and the error reporter.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.backends.select import open_backend, open_sim_control
from migctl.leases import DeviceRequest, LeaseOwner, LeaseStore
from migctl.tenancy.selection import candidates
from migctl.workflow import create_gpu_instances, parse_profile_requests, set_mode
from tests.cli.conftest import run_cli

MACHINE = "h100-single"
CLEAR_SCREEN = "\x1b[2J\x1b[H"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"
TITLE = "\x1b]0;owned\x07"
HOSTILE_JOB = f"{CLEAR_SCREEN}train{CLIPBOARD}{TITLE}[link=http://x]y[/link]\r\u202e"


@pytest.fixture(autouse=True)
def lease_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leases.db"
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(path))
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_SIM", MACHINE)
    monkeypatch.setenv("COLUMNS", "500")  # wide enough that no cell is cut short
    return path


@pytest.fixture
def device() -> str:
    """One 1g.10gb MIG device on the simulated H100; its uuid."""
    backend = open_backend(MACHINE)
    try:
        set_mode(backend, [0], True)
        create_gpu_instances(
            backend, 0, parse_profile_requests(backend.live_model(0), "1g.10gb", 0), with_ci=True
        )
        return backend.mig_devices(0)[0].uuid
    finally:
        backend.close()


def assert_inert(text: str) -> None:
    """No control character but newlines, and the hostile parts visible as escapes."""
    assert not any(c in text for c in "\x1b\x07\r\u202e"), repr(text)


def stored_hostile_lease(lease_db: Path) -> int:
    """A lease whose job and user hold escape sequences, written past the input check (as a
    row from an older migctl, or one written into the database file directly)."""
    backend = open_backend(MACHINE)
    try:
        with LeaseStore(lease_db) as store:
            owner = LeaseOwner(user="mallory", uid=4242, host="elsewhere", job="placeholder")
            lease = store.acquire(DeviceRequest(), owner, candidates(backend))
    finally:
        backend.close()
    with sqlite3.connect(lease_db) as conn:
        conn.execute(
            "UPDATE leases SET job_name = ?, owner_user = ? WHERE lease_id = ?",
            (HOSTILE_JOB, f"mal{TITLE}lory", lease.lease_id),
        )
    return lease.lease_id


@pytest.mark.parametrize(
    "job", [CLEAR_SCREEN, CLIPBOARD, "tab\there", "new\nline", "bidi\u202eflip", "x" * 129, ""]
)
def test_a_job_name_must_be_printable(
    capsys: pytest.CaptureFixture[str], device: str, job: str
) -> None:
    code, out, err = run_cli(capsys, "lease", "acquire", "--job", job)
    assert code == 11, err
    assert "job name" in err and ("printable" in err or "1 to 128" in err)
    assert_inert(out + err)
    listed = json.loads(run_cli(capsys, "-o", "json", "lease", "list")[1])["leases"]
    assert listed == []  # nothing was leased


def test_a_printable_job_name_is_kept_as_typed(
    capsys: pytest.CaptureFixture[str], device: str
) -> None:
    job = "nightly [bert] — 例 ü"
    code, out, err = run_cli(capsys, "-o", "json", "lease", "acquire", "--job", job)
    assert code == 0, err
    assert json.loads(out)["lease"]["job"] == job
    code, out, _ = run_cli(capsys, "lease", "list")
    assert code == 0 and "nightly [bert]" in out  # shown as typed, not read as markup


@pytest.mark.parametrize(
    "argv",
    [["lease", "list"], ["lease", "list", "--all"], ["status"], ["list"], ["top", "--once"]],
    ids=" ".join,
)
def test_stored_escape_sequences_are_shown_escaped(
    capsys: pytest.CaptureFixture[str], device: str, lease_db: Path, argv: list[str]
) -> None:
    stored_hostile_lease(lease_db)
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert_inert(out + err)
    flat = "".join(out.split())  # tables may wrap a long cell
    assert "\\x1b[2J" in flat and "\\x1b]52;c;" in flat
    assert "[link=http://x]" in flat  # markup shown as text, not turned into a hyperlink


@pytest.fixture
def hostile_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line (argv[0] in /proc) holds escape sequences."""
    process = subprocess.Popen([f"{CLEAR_SCREEN}evil{TITLE}", "60"], executable="sleep")
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("argv", [["status"], ["list"], ["top", "--once"]], ids=" ".join)
def test_process_command_lines_are_shown_escaped(
    capsys: pytest.CaptureFixture[str],
    device: str,
    hostile_process: subprocess.Popen[bytes],
    argv: list[str],
) -> None:
    open_sim_control(MACHINE).attach(hostile_process.pid, 0, device, 64)
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert_inert(out + err)
    assert "\\x1b[2J" in "".join(out.split()) and str(hostile_process.pid) in out


def test_hook_output_in_an_error_is_shown_escaped(
    capsys: pytest.CaptureFixture[str], device: str, tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        "before-apply: [\"printf '\\\\033]52;c;cm0K\\\\007\\\\033[2Jdrain failed' >&2; exit 3\"]\n"
    )
    code, out, err = run_cli(
        capsys, "apply", "--demand", "3x1g.10gb", "-i", "0", "--hooks", str(hooks), "--force"
    )
    assert code == 12, err
    assert_inert(out + err)
    assert "\\x1b]52;c;cm0K" in err and "drain failed" in err


def test_an_error_naming_a_hostile_holder_is_escaped(
    capsys: pytest.CaptureFixture[str], device: str, lease_db: Path
) -> None:
    stored_hostile_lease(lease_db)
    code, out, err = run_cli(capsys, "lease", "acquire", "--device", device)
    assert code == 6
    assert_inert(out + err)
    assert "\\x1b]0;owned" in "".join(err.split())
