"""The lease database itself: WAL, versioned migrations, constraints, error conversion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migctl.errors import InUseError, InvalidStateError, PermissionDeniedError
from migctl.leases import (
    MIGRATIONS,
    DeviceCandidate,
    DeviceRequest,
    LeaseOwner,
    LeaseStore,
    Migration,
)

DEVICES = [DeviceCandidate("MIG-a", 0, 1, 0, "1g.10gb", 9_984)]
OWNER = LeaseOwner(user="alice", uid=1001, host="node1")


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_store_is_wal_at_the_latest_schema_version(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "sub" / "dir" / "leases.db")
    assert store.path.exists() and store.schema_version == MIGRATIONS[-1].version
    conn = _raw(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.schema_version
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == [m.version for m in MIGRATIONS]


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    LeaseStore(tmp_path / "l.db").acquire(DeviceRequest(), OWNER, DEVICES)
    store = LeaseStore(tmp_path / "l.db")
    assert len(store.list_leases()) == 1
    count = _raw(store.path).execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
    assert count == len(MIGRATIONS)


def test_database_refuses_a_second_active_lease_on_a_device(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db")
    store.acquire(DeviceRequest(), OWNER, DEVICES)
    conn = _raw(store.path)
    copy = (
        "INSERT INTO leases (device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, "
        "owner_user, owner_uid, host, created_at, heartbeat_at) "
        "SELECT device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, 'bob', 2, host, "
        "created_at, heartbeat_at FROM leases"
    )
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(copy)
    conn.execute("UPDATE leases SET ended_at = 1, end_reason = 'released'")
    conn.execute(copy)  # an ended lease is history: the device may be leased again
    active = conn.execute("SELECT COUNT(*) FROM leases WHERE ended_at IS NULL").fetchone()[0]
    assert active == 1


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE leases SET end_reason = 'stolen', ended_at = 1",
        "UPDATE leases SET ended_at = 1",  # an end time without a reason
        "UPDATE leases SET ttl_seconds = 10",  # a TTL without an expiry
        "UPDATE leases SET ttl_seconds = -1, expires_at = 0",
    ],
)
def test_database_checks_lease_rows(tmp_path: Path, update: str) -> None:
    store = LeaseStore(tmp_path / "l.db")
    store.acquire(DeviceRequest(), OWNER, DEVICES)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        _raw(store.path).execute(update)


def _add_note_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE leases ADD COLUMN note TEXT")


def test_migration_hook_upgrades_an_existing_database(tmp_path: Path) -> None:
    LeaseStore(tmp_path / "l.db").acquire(DeviceRequest(), OWNER, DEVICES)
    step = Migration(MIGRATIONS[-1].version + 1, "lease notes", _add_note_column)
    store = LeaseStore(tmp_path / "l.db", migrations=(*MIGRATIONS, step))
    assert store.schema_version == step.version
    conn = _raw(store.path)
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(leases)")]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == step.version
    assert len(store.list_leases()) == 1  # data survives the migration
    with pytest.raises(InvalidStateError, match="schema version") as info:
        LeaseStore(tmp_path / "l.db")  # an older migctl must not guess at a newer schema
    assert info.value.hint and "upgrade" in info.value.hint


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    LeaseStore(tmp_path / "l.db")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE leases ADD COLUMN half_done TEXT")
        raise sqlite3.OperationalError("simulated failure half way")

    step = Migration(MIGRATIONS[-1].version + 1, "broken", broken)
    with pytest.raises(InvalidStateError, match="half way"):
        LeaseStore(tmp_path / "l.db", migrations=(*MIGRATIONS, step))
    conn = _raw(tmp_path / "l.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].version
    assert "half_done" not in [row[1] for row in conn.execute("PRAGMA table_info(leases)")]


def test_a_locked_database_is_reported_as_in_use(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db", busy_timeout_s=0.05)
    blocker = _raw(store.path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(InUseError, match="locked") as info:
            store.acquire(DeviceRequest(), OWNER, DEVICES)
        assert info.value.context["path"] == str(store.path)
    finally:
        blocker.execute("ROLLBACK")
    assert store.acquire(DeviceRequest(), OWNER, DEVICES).uuid == "MIG-a"


def test_unusable_directory_is_a_permission_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(PermissionDeniedError, match="directory") as info:
        LeaseStore(tmp_path / "file" / "leases.db")
    assert info.value.hint and "MIGCTL_LEASE_DB" in info.value.hint


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    (tmp_path / "l.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InvalidStateError, match="not a database") as info:
        LeaseStore(tmp_path / "l.db")
    assert info.value.hint and "move it aside" in info.value.hint
