"""The lease database: tables, versioned migrations, connections, SQLite error conversion.

Why this module exists: the rule "a MIG device has at most one active lease" is enforced by the
database itself (a UNIQUE partial index over active rows), not only by the code that reads before
it writes; and the schema must be able to grow without losing history. ``PRAGMA user_version``
is the schema version; every applied step is also recorded in ``schema_version``. A database
from a newer migctl is refused rather than guessed at.

Connections run in autocommit mode (``isolation_level=None``): callers open their own
``BEGIN IMMEDIATE`` transactions (see :func:`write_transaction`), so the write lock is taken
before anything is read and two processes can never both see a device as free.

Only the lease store imports this module; it imports only ``migctl.errors``.
"""

from __future__ import annotations

import random
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migctl.errors import InUseError, InvalidStateError, MigctlError, PermissionDeniedError
from migctl.leases.rows import MalformedLeaseRow

_BEGIN_FIRST_DELAY_S = 0.0005
_BEGIN_MAX_DELAY_S = 0.004
END_REASONS_SQL = "('released', 'expired', 'holder-died', 'revoked')"

_V1_STATEMENTS = (
    f"""
    CREATE TABLE leases (
        lease_id INTEGER PRIMARY KEY AUTOINCREMENT,
        device_uuid TEXT NOT NULL,
        gpu_index INTEGER NOT NULL,
        gi_id INTEGER NOT NULL,
        ci_id INTEGER NOT NULL,
        profile TEXT NOT NULL,
        memory_mib INTEGER NOT NULL,
        sm_count INTEGER,
        owner_user TEXT NOT NULL,
        owner_uid INTEGER NOT NULL,
        job_name TEXT,
        holder_pid INTEGER,
        holder_start_ticks INTEGER,
        host TEXT NOT NULL,
        created_at REAL NOT NULL,
        ttl_seconds REAL CHECK (ttl_seconds IS NULL OR ttl_seconds > 0),
        heartbeat_at REAL NOT NULL,
        expires_at REAL,
        ended_at REAL,
        end_reason TEXT CHECK (end_reason IS NULL OR end_reason IN {END_REASONS_SQL}),
        ended_by TEXT,
        CHECK ((ended_at IS NULL) = (end_reason IS NULL)),
        CHECK ((ttl_seconds IS NULL) = (expires_at IS NULL))
    )
    """,
    # The database itself forbids two active leases on one device.
    "CREATE UNIQUE INDEX leases_one_active_per_device ON leases(device_uuid) "
    "WHERE ended_at IS NULL",
    "CREATE INDEX leases_by_owner ON leases(owner_user, lease_id)",
    "CREATE INDEX leases_by_device ON leases(device_uuid, lease_id)",
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: run inside the migrating transaction, then ``user_version = version``."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _V1_STATEMENTS:
        conn.execute(statement)


_V2_STATEMENTS = (
    "ALTER TABLE leases ADD COLUMN kind TEXT NOT NULL DEFAULT 'mig' "
    "CHECK (kind IN ('mig', 'soft'))",
    "ALTER TABLE leases ADD COLUMN share_percent INTEGER "
    "CHECK (share_percent IS NULL OR share_percent BETWEEN 1 AND 100)",
    "ALTER TABLE leases ADD COLUMN memory_limit_mib INTEGER "
    "CHECK (memory_limit_mib IS NULL OR memory_limit_mib > 0)",
    "ALTER TABLE leases ADD COLUMN parent_uuid TEXT",
    "ALTER TABLE leases ADD COLUMN pipe_dir TEXT",
    "CREATE INDEX leases_by_parent ON leases(parent_uuid) WHERE ended_at IS NULL",
    # Soft devices a layout made: shares of a GPU or MIG device, leased or waiting for a lease.
    """
    CREATE TABLE soft_slots (
        device_uuid TEXT PRIMARY KEY,
        parent_uuid TEXT NOT NULL,
        gpu_index INTEGER NOT NULL,
        gi_id INTEGER NOT NULL,
        ci_id INTEGER NOT NULL,
        share_percent INTEGER NOT NULL CHECK (share_percent BETWEEN 1 AND 100),
        memory_limit_mib INTEGER NOT NULL CHECK (memory_limit_mib > 0),
        sm_count INTEGER,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX soft_slots_by_parent ON soft_slots(parent_uuid)",
)


def _create_v2(conn: sqlite3.Connection) -> None:
    for statement in _V2_STATEMENTS:
        conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "leases table with one active lease per device", _create_v1),
    Migration(2, "soft leases (MPS shares) and the soft devices layouts make", _create_v2),
)


def connect(path: Path, *, busy_timeout_s: float) -> sqlite3.Connection:
    """An autocommit connection that waits up to ``busy_timeout_s`` for the write lock.

    It opens an existing file only (``mode=rw``): a database that vanished is an error, never
    silently replaced by an empty one (``dbfile`` creates new databases).
    """
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
    try:
        # WAL + NORMAL: a killed process never corrupts the file nor loses a commit; only a
        # power cut may lose the last commits (every holder is gone then anyway).
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(
    conn: sqlite3.Connection, *, busy_timeout_s: float
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception."""
    begin_immediate(conn, busy_timeout_s=busy_timeout_s)
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def begin_immediate(conn: sqlite3.Connection, *, busy_timeout_s: float) -> None:
    """Take the write lock, retrying every few milliseconds until ``busy_timeout_s`` passes.

    SQLite's own busy handler sleeps up to 100 ms between tries, which under contention gives
    some writers waits of seconds; polling with short jittered sleeps wakes them promptly.
    """
    deadline = time.monotonic() + busy_timeout_s
    delay_s = _BEGIN_FIRST_DELAY_S
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(random.uniform(0, delay_s))
            delay_s = min(delay_s * 2, _BEGIN_MAX_DELAY_S)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def prepare_database(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration],
    *,
    busy_timeout_s: float,
    path: Path,
    new: bool = False,
) -> int:
    """Switch to WAL and bring the schema up to date; returns the schema version.

    An up-to-date WAL database is only read (no write lock), so opening a store never waits
    behind another process's transaction. Only a ``new`` database (being built by
    ``dbfile``) may start without a schema; an existing one without it is damaged.
    """
    latest = max((m.version for m in migrations), default=0)
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current == 0 and not new:
        raise damaged(path, "it holds no migctl lease tables (schema version 0)")
    if mode == "wal" and current == latest:
        return current
    if mode != "wal":
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    if mode != "wal":
        raise InvalidStateError(
            f"the lease database cannot use WAL journaling (got {mode!r})",
            hint="put MIGCTL_LEASE_DB on a local file system (not NFS or a read-only mount)",
        )
    with write_transaction(conn, busy_timeout_s=busy_timeout_s):
        return _migrate(conn, migrations)


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    latest = max((m.version for m in migrations), default=0)
    if current > latest:
        raise InvalidStateError(
            f"the lease database has schema version {current}, this migctl knows up to {latest}",
            hint="upgrade migctl, or point MIGCTL_LEASE_DB at another file",
        )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        migration.apply(conn)
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, time.time()),
        )
        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        current = migration.version
    return current


def damaged(path: Path, what: str) -> InvalidStateError:
    """The refusal for a lease database that lost its leases (empty, no schema, corrupt)."""
    return InvalidStateError(
        f"the lease database {path} is damaged: {what}. Its leases are lost, so migctl cannot "
        "tell which MIG devices are leased, and does not start a new database on its own",
        hint=f"restore {path} from a backup if you have one; otherwise check which devices are "
        f"in use (`migctl status`), then move it aside (mv {path} {path}.damaged); "
        "the next lease command starts an empty database",
        context={"path": str(path)},
    )


@contextmanager
def converted_errors(path: Path, busy_timeout_s: float) -> Iterator[None]:
    """Turn ``sqlite3`` errors, and rows of the wrong shape, into migctl errors that say which
    file and what to do."""
    try:
        yield
    except sqlite3.Error as exc:
        raise convert_sqlite_error(exc, path, busy_timeout_s) from exc
    except MalformedLeaseRow as exc:
        raise InvalidStateError(
            f"the lease database {path} holds a malformed row: {exc}",
            hint=f"correct or delete that row (sqlite3 {path}), or restore the file from a "
            f"backup; moving it aside (mv {path} {path}.damaged) forgets every lease",
            context={"path": str(path), "lease_id": str(exc.lease_id)},
        ) from exc


def convert_sqlite_error(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> MigctlError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return InUseError(
            f"lease database {path} stayed locked by another process for {busy_timeout_s:g} s",
            hint="retry; if it persists, look for a hung migctl process holding the database",
            context={"path": str(path)},
        )
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return PermissionDeniedError(
            f"cannot open lease database {path} for writing: {exc}",
            hint="set MIGCTL_LEASE_DB to a writable file, or fix the directory's permissions",
            context={"path": str(path)},
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return damaged(path, f"SQLite says: {exc}")
    return InvalidStateError(
        f"lease database {path} failed: {exc}",
        hint="if the file is damaged, move it aside (leases are then forgotten)",
        context={"path": str(path)},
    )
