"""One SQLite connection per thread and process for a lease store.

Why this module exists: opening a connection for every operation costs about a millisecond
(and closing the last connection of a WAL database checkpoints it), so a store keeps one per
thread. SQLite connections must not cross ``fork()``: a child that inherits a store opens its
own connection and never touches (not even closes) the parent's. A connection that raised a
database error is dropped and reopened on next use.

Only the lease store imports this module; it imports the schema module's ``connect``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from migctl.leases.schema import connect

# Connections inherited over fork(): kept referenced so they are never closed in the child.
_INHERITED: list[sqlite3.Connection] = []


class ConnectionCache:
    """Hands each (process, thread) its own autocommit connection to ``path``."""

    def __init__(self, path: Path, *, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            _INHERITED.append(conn)
        conn = connect(self._path, busy_timeout_s=self._busy_timeout_s)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def discard(self) -> None:
        """Close and forget the calling thread's connection (after an error, or on close)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        if self._local.pid != os.getpid():
            _INHERITED.append(conn)
            return
        with contextlib.suppress(sqlite3.Error):  # a broken connection: nothing left to save
            conn.close()
