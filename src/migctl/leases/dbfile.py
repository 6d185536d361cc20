"""The lease database file: created whole and private, refused when empty or damaged.

Why this module exists: the lease database is the only record of which MIG devices are leased;
``apply`` and ``split`` leave a leased device alone only because they find its lease there. A
database that silently started afresh (a file truncated to zero bytes, or one that lost its
tables) would let the next change destroy devices in use. So:

* a new database is built completely in a temporary file beside its path (WAL mode, every
  migration) and hard-linked into place only if nothing is there yet; the path therefore never
  holds a half-made database, and an empty or table-less file there is always damage;
* an existing file that is empty, or holds no migctl schema, is refused with a message naming
  the file and how to recover;
* it is private: the directory migctl creates for it is ``0700`` and the file ``0600``, or
  ``0660`` when its directory is group-writable (the shared setup of docs/tenancy.md, where every
  user of a group writes one database). Nobody outside that group reads who holds what. SQLite
  gives its ``-wal`` and ``-shm`` files the database file's permissions.

Only the lease store imports this module; it imports ``migctl.errors``, ``migctl.files`` and
the schema module.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from migctl.errors import PermissionDeniedError
from migctl.files import TEMP_SUFFIX, sweep_temporaries
from migctl.leases.schema import Migration, convert_sqlite_error, damaged, prepare_database

PRIVATE_DIRECTORY_MODE = 0o700


def ensure_database_file(
    path: Path, migrations: Sequence[Migration], *, busy_timeout_s: float
) -> None:
    """Create the database at ``path`` if there is none; refuse an empty one."""
    make_private_directory(path.parent, path)
    if not path.exists():
        _create(path, migrations, busy_timeout_s)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _cannot(f"read the lease database {path}", exc, path) from exc
    if size == 0:
        raise damaged(path, "it is empty (0 bytes)")


def _cannot(what: str, exc: OSError, path: Path) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"cannot {what}: {exc.strerror}",
        hint="set MIGCTL_LEASE_DB to a file in a writable directory, or fix the permissions",
        context={"path": str(path)},
    )


def file_mode_for(directory: Path) -> int:
    """0660 in a group-writable directory (a database shared by a group), else 0600."""
    try:
        shared = bool(directory.stat().st_mode & stat.S_IWGRP)
    except OSError:
        shared = False
    return 0o660 if shared else 0o600


def make_private_directory(directory: Path, path: Path) -> None:
    """Create ``directory`` (0700) and its missing parents; an existing one is left as it is."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)
    except OSError as exc:
        raise _cannot(f"create the lease database directory {directory}", exc, path) from exc


def _create(path: Path, migrations: Sequence[Migration], busy_timeout_s: float) -> None:
    """Build a complete database in a temporary file, then link it into place (no overwrite)."""
    sweep_temporaries(path)
    try:
        fd, name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
        )
    except OSError as exc:
        raise _cannot(f"create the lease database {path}", exc, path) from exc
    temporary = Path(name)
    try:
        os.fchmod(fd, file_mode_for(path.parent))
        os.close(fd)
        _initialise(temporary, path, migrations, busy_timeout_s)
        _link_into_place(temporary, path)
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _initialise(
    temporary: Path, path: Path, migrations: Sequence[Migration], busy_timeout_s: float
) -> None:
    conn = sqlite3.connect(str(temporary), timeout=busy_timeout_s, isolation_level=None)
    try:
        prepare_database(conn, migrations, busy_timeout_s=busy_timeout_s, path=path, new=True)
    except sqlite3.Error as exc:
        raise convert_sqlite_error(exc, path, busy_timeout_s) from exc
    finally:
        conn.close()  # the last connection checkpoints the WAL into the file


def _link_into_place(temporary: Path, path: Path) -> None:
    try:
        os.link(temporary, path)
    except FileExistsError:
        return  # another process created it first: use theirs
    except OSError:
        if not path.exists():  # a file system without hard links
            os.replace(temporary, path)
