"""The lease database file: private when migctl creates it, refused when it lost its leases.

A lease database truncated to zero bytes (or left without its tables) used to start afresh
silently, and the next `split` destroyed the device a lease protected. Now every verb that needs
the leases refuses with a message naming the file and how to recover, and changes nothing.
"""

from __future__ import annotations

import gc
import sqlite3
import stat
from pathlib import Path

import pytest

from migctl.errors import InvalidStateError
from migctl.leases import DeviceCandidate, DeviceRequest, LeaseOwner, LeaseStore
from tests.cli.conftest import run_cli, run_cli_json

MACHINE = "h100-single"
OWNER = LeaseOwner(user="alice", uid=1001, host="node1")


@pytest.fixture(autouse=True)
def _machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_SIM", MACHINE)
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_directory_are_private(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "state" / "migctl" / "leases.db")
    store.acquire(DeviceRequest(), OWNER, [DeviceCandidate("MIG-a", 0, 1, 0, "1g.10gb", 9_984)])
    assert mode_of(store.path.parent) == 0o700
    sidecars = [Path(f"{store.path}{tail}") for tail in ("-wal", "-shm")]
    for path in [store.path, *(p for p in sidecars if p.exists())]:
        assert mode_of(path) == 0o600, path
    assert [p.name for p in store.path.parent.iterdir() if "migctl-tmp" in p.name] == []


def test_a_database_in_a_group_directory_is_shared_with_the_group(tmp_path: Path) -> None:
    shared = tmp_path / "srv"
    shared.mkdir()
    shared.chmod(0o2770)  # the setup docs/tenancy.md describes
    store = LeaseStore(shared / "leases.db")
    assert mode_of(store.path) == 0o660
    assert mode_of(shared) == 0o2770  # an existing directory is left as it is


def test_the_cli_creates_a_private_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGCTL_LEASE_DB", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "xdg" / "migctl" / "leases.db"))
    assert run_cli(capsys, "split", "2")[0] == 0
    assert run_cli(capsys, "lease", "acquire", "--job", "j")[0] == 0
    db = tmp_path / "xdg" / "migctl" / "leases.db"
    assert mode_of(db.parent) == 0o700 and mode_of(db) == 0o600


def damage_empty(path: Path) -> None:
    gc.collect()  # close the connections earlier in-process commands left behind
    for tail in ("-wal", "-shm"):
        Path(f"{path}{tail}").unlink(missing_ok=True)
    path.write_bytes(b"")


def damage_no_tables(path: Path) -> None:
    damage_empty(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def damage_garbage(path: Path) -> None:
    damage_empty(path)
    path.write_bytes(b"\x00garbage, not SQLite" * 300)


DAMAGE = {"empty": damage_empty, "no-tables": damage_no_tables, "garbage": damage_garbage}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize(
    "argv",
    [
        ["split", "7", "-i", "0"],
        ["apply", "--demand", "7x1g.10gb", "-i", "0"],
        ["lease", "acquire"],
        ["lease", "list"],
        ["run", "--", "true"],
    ],
    ids=lambda argv: argv[0] + ("-" + argv[1] if argv[0] == "lease" else ""),
)
def test_a_damaged_database_is_refused_and_nothing_changes(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    argv: list[str],
) -> None:
    db = tmp_path / "leases.db"
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(db))
    assert run_cli(capsys, "split", "2", "-i", "0")[0] == 0
    leased = run_cli_json(capsys, "lease", "acquire", "--job", "protected")["lease"]["uuid"]
    DAMAGE[damage](db)
    before = run_cli_json(capsys, "list")["gpus"]
    damaged_bytes = db.read_bytes()
    code, out, err = run_cli(capsys, *argv)
    assert code == 10, out + err
    assert str(db) in err and "damaged" in err and "mv " in err
    after = run_cli_json(capsys, "list")["gpus"]
    assert after == before  # the leased device (and every other) is still there
    assert leased in {d["uuid"] for d in after[0]["mig_devices"]}
    assert db.read_bytes() == damaged_bytes  # left for the admin to inspect


def test_the_store_refuses_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "l.db").write_bytes(b"")
    with pytest.raises(InvalidStateError, match="empty") as info:
        LeaseStore(tmp_path / "l.db")
    assert info.value.hint and "move it aside" in info.value.hint
