"""The daemon's own SQLite database: tokens, audit log, jobs and the desired layout.

Why this module exists: a daemon killed with SIGKILL must lose nothing it acknowledged, and a
restart must know what it was asked for. Everything the daemon remembers (besides leases, which
live in the lease store, and an apply in progress, which lives in the engine's journal) is in
one WAL-mode SQLite file, ``service.db`` in the state directory, readable by its owner only
(it holds token hashes). Schema changes are numbered migrations (``PRAGMA user_version``); a
database from a newer migctl is refused. ``migctl token`` opens the same file directly when
run by its owner (root), so it works while the daemon runs.

One connection per process, guarded by a lock (statements are short); writes are
``BEGIN IMMEDIATE`` transactions. Only ``migctl.server`` and ``migctl.cli.token_cmd`` import it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from migctl.errors import InUseError, InvalidStateError, MigctlError, PermissionDeniedError

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tokens (
            token_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
            owner TEXT NOT NULL,
            salt BLOB NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            last_used_at REAL,
            revoked_at REAL,
            revoked_by TEXT
        )""",
        "CREATE UNIQUE INDEX tokens_active_name ON tokens(name) WHERE revoked_at IS NULL",
        """CREATE TABLE audit (
            audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            role TEXT,
            via TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT,
            status INTEGER NOT NULL,
            result TEXT NOT NULL CHECK (result IN ('ok', 'error')),
            detail TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE jobs (
            job_id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
            requested_by TEXT NOT NULL,
            request TEXT NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            message TEXT,
            result TEXT,
            error TEXT
        )""",
        """CREATE TABLE desired_layouts (
            gpu_index INTEGER PRIMARY KEY,
            layout TEXT NOT NULL,
            updated_at REAL NOT NULL,
            updated_by TEXT NOT NULL,
            job_id INTEGER
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StateDB:
    """The daemon's state database at ``path`` (created, mode 0600, when missing)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._lock = threading.RLock()
        with _converted(path):
            _create_private(path)
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._migrate()

    def _migrate(self) -> None:
        with self.write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise InvalidStateError(
                    f"{self.path} has schema version {version}; this migctl knows {SCHEMA_VERSION}",
                    hint="run the newer migctl that wrote it, or move the file away",
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._lock, _converted(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock, _converted(self.path):
            return list(self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()


def _create_private(path: Path) -> None:
    """Make the directory (0700 when new) and the file (0600) so no one else can read it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(descriptor)


@contextlib.contextmanager
def _converted(path: Path) -> Iterator[None]:
    """SQLite and OS errors as migctl errors that name the file."""
    try:
        yield
    except MigctlError:
        raise
    except PermissionError as exc:
        raise PermissionDeniedError(
            f"cannot open the service database {path}: {exc.strerror}",
            hint="run as the daemon's user (root), or go through the API",
            context={"path": str(path)},
        ) from exc
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise InUseError(
                f"the service database {path} stayed locked: {exc}",
                hint="another migctl holds it; try again",
                context={"path": str(path)},
            ) from exc
        raise InvalidStateError(
            f"the service database {path} failed: {exc}",
            hint="check the file and its directory (disk full? read-only?)",
            context={"path": str(path)},
        ) from exc
    except (sqlite3.Error, OSError) as exc:
        raise InvalidStateError(
            f"the service database {path} failed: {exc}",
            hint="check the file and its directory",
            context={"path": str(path)},
        ) from exc
