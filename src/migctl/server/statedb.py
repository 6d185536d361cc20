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

A new database is made whole before it appears: created and migrated under a temporary name,
then linked into place (never over an existing file). So a ``service.db`` that exists but is
empty, is not SQLite, or fails SQLite's ``quick_check`` was damaged after the fact (a full disk,
a bad copy, a truncation): it is refused with :class:`DamagedStateError`, naming the file and how
to recover, instead of being silently replaced by an empty one (the daemon would then forget its
tokens and answer 401 to everyone, its audit log, jobs and desired layout).
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
    (
        # audit retention prunes by age
        "CREATE INDEX audit_at ON audit(at)",
        # leases granted whose answer has not yet reached the client (see server.provisional)
        """CREATE TABLE unconfirmed_leases (
            lease_id INTEGER PRIMARY KEY,
            granted_at REAL NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
_SQLITE_HEADER = b"SQLite format 3\x00"


class DamagedStateError(InvalidStateError):
    """``service.db`` exists but is empty or damaged: the daemon refuses to start on it."""


class StateDB:
    """The daemon's state database at ``path`` (created, mode 0600, when missing)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._lock = threading.RLock()
        with _converted(path):
            if not path.exists():
                _create_whole(path)
            _check_file(path)
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            try:
                _check_contents(self._conn, path)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                _migrate(self._conn, path)
            except BaseException:
                self._conn.close()
                raise

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._lock, _converted(self.path), _transaction(self._conn) as conn:
            yield conn

    def read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock, _converted(self.path):
            return list(self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with _transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise InvalidStateError(
                f"{path} has schema version {version}; this migctl knows {SCHEMA_VERSION}",
                hint="run the newer migctl that wrote it, or move the file away",
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[number]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _create_whole(path: Path) -> None:
    """A new, migrated database at ``path`` (0600, directory 0700 when new), made under a
    temporary name and linked into place, so ``path`` never exists half-made. Someone else
    creating it at the same moment wins; ours is dropped."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            _migrate(conn, path)
        finally:
            conn.close()
        with open(temporary, "rb+") as made:
            os.fsync(made.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _damaged(path: Path, what: str) -> DamagedStateError:
    return DamagedStateError(
        f"the service database {path} {what}; migctl will not start afresh over it: its "
        "tokens, audit log, jobs and desired layout would be lost without a word",
        hint=f"restore {path.name} from a backup; or, to start with an empty one (tokens must "
        f"be created again, the desired layout applied again), move it aside: "
        f"mv {path} {path}.damaged",
        context={"path": str(path)},
    )


def _check_file(path: Path) -> None:
    """Refuse an existing file that cannot be a database migctl made (see the module doc)."""
    with open(path, "rb") as found:
        header = found.read(len(_SQLITE_HEADER))
    if not header:
        raise _damaged(path, "is empty (0 bytes)")
    if header != _SQLITE_HEADER:
        raise _damaged(path, "is not an SQLite database")


def _check_contents(conn: sqlite3.Connection, path: Path) -> None:
    try:
        verdict = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, f"cannot be read ({exc})") from exc
    if verdict != ["ok"]:
        raise _damaged(path, f"is damaged ({'; '.join(verdict[:3])})")
    if version == 0:
        raise _damaged(path, "holds no migctl tables")


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
