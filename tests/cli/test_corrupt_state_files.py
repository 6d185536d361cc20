"""A state file of the wrong shape is refused with a clear error naming the file, never exit 70.

The files: the simulator's state (JSON), the apply journal (JSON) and the lease database's rows
(SQLite, where a column may hold a value of any type). Each is corrupted in many ways that a
crash, a careless edit, another tool or another migctl version could leave; every verb that
reads it must exit with a documented code (not 0, not 70), without a traceback, naming the file.
"""

from __future__ import annotations

import copy
import gc
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migctl.backends.select import open_backend
from migctl.cli.main import run
from migctl.engine.apply import journal_for
from migctl.leases import DeviceRequest, LeaseOwner, LeaseStore
from migctl.tenancy.selection import candidates

MACHINE = "h100-single"
Edit = Callable[[Any], Any]


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_SIM", MACHINE)
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def assert_refused(code: int, text: str, path: Path) -> None:
    assert code not in {0, 70}, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert str(path) in " ".join(text.split()).replace(" ", "") or str(path) in text, text


def setting(*keys: Any, value: Any) -> Edit:
    """An edit that sets ``data[k1][k2]... = value`` (a missing last key is added)."""

    def edit(data: Any) -> Any:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return data

    return edit


def dropping(*keys: Any) -> Edit:
    def edit(data: Any) -> Any:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
        return data

    return edit


def replacing(value: Any) -> Edit:
    return lambda data: value


# --- the simulator's state ----------------------------------------------------------------

GPU = ("gpus", 0)
GI = (*GPU, "gis", 0)
CI = (*GI, "cis", 0)
STATE_EDITS: dict[str, Edit] = {
    "a list": replacing([]),
    "null": replacing(None),
    "a string": replacing("state"),
    "empty": replacing({}),
    "schema only": replacing({"schema": 1}),
    "no gpus": dropping("gpus"),
    "gpus a string": setting("gpus", value="x"),
    "gpu a number": setting("gpus", value=[1]),
    "gpu empty": setting("gpus", value=[{}]),
    "gpu index text": setting(*GPU, "index", value="0"),
    "gpu index elsewhere": setting(*GPU, "index", value=5),
    "gpu uuid a number": setting(*GPU, "uuid", value=5),
    "gpu uuid not a uuid": setting(*GPU, "uuid", value="banana"),
    "bus id garbage": setting(*GPU, "bus_id", value="garbage"),
    "model unknown": setting(*GPU, "model", value="no-such-gpu"),
    "model a number": setting(*GPU, "model", value=5),
    "mig mode a word": setting(*GPU, "mig_current", value="yes"),
    "gis a string": setting(*GPU, "gis", value="x"),
    "gi id text": setting(*GI, "id", value="a"),
    "gi profile unknown": setting(*GI, "profile_id", value=999),
    "gi beyond the slices": setting(*GI, "start", value=50),
    "gi size negative": setting(*GI, "size", value=-4),
    "gi ids twice": setting(*GPU, "gis", 1, "id", value=1),
    "gis overlap": setting(*GPU, "gis", 1, "start", value=2),
    "ci uuid a number": setting(*CI, "uuid", value=5),
    "ci profile unknown": setting(*CI, "profile_id", value=77),
    "ci beyond its gi": setting(*CI, "start", value=9),
    "cis a dict": setting(*GI, "cis", value={}),
    "process pid text": setting(*GPU, "processes", value=[{"pid": "x", "start_time": 1}]),
    "processes a string": setting(*GPU, "processes", value="x"),
    "process pid negative": setting(
        *GPU, "processes", value=[{"pid": -1, "start_time": 1, "used_memory_mib": 5}]
    ),
    "fault function a number": setting("faults", value=[{"function": 5, "error": 3}]),
    "faults a string": setting("faults", value="x"),
    "permissions unknown": setting("permissions", value="maybe"),
    "reset a word": setting("reset_supported", value="yes"),
    "boot id text": setting("boot_id", value="x"),
    "uuid counter negative": setting("uuid_counter", value=-1),
    "name a number": setting("name", value=5),
    "driver a number": setting("driver_version", value=5),
    "models a string": setting("models", value="x"),
    "embedded model garbage": setting("models", value={"k": {"name": 5}}),
    "an unknown key": setting("surprise", value=1),
}


@pytest.fixture
def state_file(capsys: pytest.CaptureFixture[str], sim_dir: Path) -> Path:
    assert cli(capsys, "split", "2")[0] == 0
    return sim_dir / f"{MACHINE}.json"


@pytest.mark.parametrize("edit", list(STATE_EDITS))
@pytest.mark.parametrize("argv", [["status"], ["split", "7"], ["lease", "acquire"]], ids=" ".join)
def test_a_malformed_simulator_state_is_refused(
    capsys: pytest.CaptureFixture[str], state_file: Path, edit: str, argv: list[str]
) -> None:
    good = json.loads(state_file.read_text())
    state_file.write_text(json.dumps(STATE_EDITS[edit](copy.deepcopy(good))))
    code, text = cli(capsys, *argv)
    assert_refused(code, text, state_file)
    assert "sim reset-state" in text


def test_a_malformed_simulator_state_can_be_reset(
    capsys: pytest.CaptureFixture[str], state_file: Path
) -> None:
    state_file.write_text("[]")
    assert cli(capsys, "status")[0] == 11
    code, text = cli(capsys, "sim", "reset-state")
    assert code == 0, text
    assert cli(capsys, "status")[0] == 0


# --- the apply journal ---------------------------------------------------------------------

GOOD_JOURNAL: dict[str, Any] = {
    "machine": f"sim-{MACHINE}",
    "pid": 999_999_999,
    "started_at": "2026-01-01T00:00:00+00:00",
    "target": {"0": {"mig_enabled": True, "gis": [{"profile": "3g.40gb", "placement": None}]}},
    "checkpoint": {"0": {"mig_enabled": True, "gis": []}},
    "ops": [{"op": "create_gi", "gpu": 0, "profile": "3g.40gb", "placement": "0:4"}],
    "done": 0,
    "status": "running",
    "created_gis": {},
    "schema": 1,
}
TARGET_GI = ("target", "0", "gis", 0)
JOURNAL_EDITS: dict[str, Edit] = {
    "a list": replacing([]),
    "null": replacing(None),
    "a number": replacing(3),
    "empty": replacing({}),
    "no target": dropping("target"),
    "target a list": setting("target", value=[]),
    "gpu key a word": setting("target", value={"abc": {"gis": []}}),
    "gpu key negative": setting("target", value={"-1": {"gis": []}}),
    "layout a list": setting("target", "0", value=[]),
    "gis a string": setting("target", "0", "gis", value="x"),
    "profile a number": setting(*TARGET_GI, "profile", value=5),
    "profile unknown": setting(*TARGET_GI, "profile", value="9g.999gb"),
    "placement garbage": setting(*TARGET_GI, "placement", value="zz"),
    "placement beyond the gpu": setting(*TARGET_GI, "placement", value="40:4"),
    "cis a string": setting(*TARGET_GI, "cis", value="x"),
    "ci profile a number": setting(*TARGET_GI, "cis", value=[{"profile": 3}]),
    "mig mode a word": setting("target", "0", "mig_enabled", value="yes"),
    "a missing gpu": setting("target", value={"9": {"gis": []}}),
    "checkpoint garbage": setting("checkpoint", value={"0": "x"}),
    "pid a word": setting("pid", value="abc"),
    "pid negative": setting("pid", value=-5),
    "done a word": setting("done", value="x"),
    "done beyond the ops": setting("done", value=7),
    "ops a string": setting("ops", value="x"),
    "ops numbers": setting("ops", value=[1, 2]),
    "created gis text": setting("created_gis", value={"0:0": "x"}),
    "status unknown": setting("status", value="dancing"),
    "schema 2": setting("schema", value=2),
    "another machine": setting("machine", value="sim-dgx-h100"),
    "started a number": setting("started_at", value=5),
    "an unknown key": setting("surprise", value=1),
}


@pytest.fixture
def journal_file(capsys: pytest.CaptureFixture[str]) -> Path:
    assert cli(capsys, "mode", "enable")[0] == 0
    backend = open_backend(MACHINE)
    try:
        path = journal_for(backend).path
    finally:
        backend.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_the_good_journal_is_recovered(
    capsys: pytest.CaptureFixture[str], journal_file: Path
) -> None:
    journal_file.write_text(json.dumps(GOOD_JOURNAL))
    code, text = cli(capsys, "recover")
    assert code == 0, text
    assert not journal_file.exists()


@pytest.mark.parametrize("edit", list(JOURNAL_EDITS))
@pytest.mark.parametrize(
    "argv", [["recover"], ["recover", "--rollback"], ["split", "2"]], ids=" ".join
)
def test_a_malformed_journal_is_refused(
    capsys: pytest.CaptureFixture[str], journal_file: Path, edit: str, argv: list[str]
) -> None:
    text = json.dumps(JOURNAL_EDITS[edit](copy.deepcopy(GOOD_JOURNAL)))
    journal_file.write_text(text)
    code, said = cli(capsys, *argv)
    if edit in TARGET_ONLY and argv != ["recover"]:
        # well-formed, but its target cannot be carried out here: a rollback does not use the
        # target, and a new apply replaces it (the interrupted apply is repaired either way)
        assert code == 0, said
        return
    assert_refused(code, said, journal_file)
    assert journal_file.read_text() == text  # kept for the admin to inspect


TARGET_ONLY = {"profile unknown", "placement beyond the gpu", "a missing gpu"}


# --- lease database rows -------------------------------------------------------------------

ROW_EDITS = {
    "gpu index a word": "gpu_index = 'x'",
    "gi id a word": "gi_id = 'x'",
    "memory a word": "memory_mib = 'x'",
    "sms a word": "sm_count = 'x'",
    "uid a word": "owner_uid = 'x'",
    "pid a word": "holder_pid = 'x'",
    "start ticks a word": "holder_start_ticks = 'x'",
    "created a word": "created_at = 'x'",
    "heartbeat a word": "heartbeat_at = 'x'",
    "expiry a word": "ttl_seconds = 'x', expires_at = 'x'",
    "uuid a blob": "device_uuid = x'00ff'",
    "user a blob": "owner_user = x'00ff'",
    "job a blob": "job_name = x'1b5b324a'",
    "host a blob": "host = x'00'",
    "end reason unknown": "end_reason = 'vanished'",
}


@pytest.fixture
def lease_row(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    assert cli(capsys, "split", "2")[0] == 0
    backend = open_backend(MACHINE)
    try:
        with LeaseStore(tmp_path / "leases.db") as store:
            owner = LeaseOwner(user="bob", uid=4242, host="elsewhere", job="j")
            store.acquire(DeviceRequest(), owner, candidates(backend))
    finally:
        backend.close()
    gc.collect()
    return tmp_path / "leases.db"


@pytest.mark.parametrize("edit", list(ROW_EDITS))
@pytest.mark.parametrize(
    "argv", [["lease", "list"], ["lease", "acquire"], ["split", "7"]], ids=" ".join
)
def test_a_malformed_lease_row_is_refused(
    capsys: pytest.CaptureFixture[str], lease_row: Path, edit: str, argv: list[str]
) -> None:
    with sqlite3.connect(lease_row) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")  # as another tool could
        conn.execute(f"UPDATE leases SET {ROW_EDITS[edit]}")
    code, text = cli(capsys, *argv)
    assert_refused(code, text, lease_row)
    assert "lease 1" in text
