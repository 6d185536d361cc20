"""Leases granted by the daemon are provisional until their answer has reached the client.

Why this module exists: a daemon killed (SIGKILL, power loss) between a lease's commit and its
answer leaves a lease its client never got. Without a TTL and a holder PID nothing would ever
end it: the device would stay taken forever. So every lease the daemon grants is:

1. committed with a TTL of at most :attr:`Provisional.window_s` (one transaction: even a crash
   right after the commit leaves a lease that ends by itself within the window);
2. listed, right after the commit, in ``unconfirmed_leases`` (``service.db``);
3. once its answer was written to a connection still open, given the TTL its client asked for
   (none, or its own, counted from the grant) and taken off the list; when the client's
   connection was gone before the answer left, it is released at once (``revoked``);
4. at the next start, if still listed, ended at once (``revoked`` by ``migctl-daemon``, with an
   audit row): its answer may never have left, and the device is free for whoever asks next.

The answer a client gets already shows the TTL it asked for. ``MIGCTL_TEST_CRASH_AT`` (``lease-
committed`` or ``lease-listed``) makes the daemon SIGKILL itself at step 1 or 2: crash tests.
Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time

from migctl.errors import NotFoundError
from migctl.leases import Lease, LeaseStore
from migctl.server.peercred import DELIVERED_KEY
from migctl.server.statedb import StateDB

__all__ = ["DELIVERED_KEY", "Provisional", "as_asked"]

log = logging.getLogger(__name__)
CRASH_ENV = "MIGCTL_TEST_CRASH_AT"
UNCONFIRMED_BY = "migctl-daemon: granted as the daemon stopped; its answer may never have left"
UNDELIVERED_BY = "migctl-daemon: the client left before the lease reached it"
DEFAULT_WINDOW_S = 60.0


def as_asked(lease: Lease, ttl_seconds: float | None) -> Lease:
    """``lease`` as it stands once confirmed: the TTL its client asked for."""
    expires = None if ttl_seconds is None else lease.created_at + ttl_seconds
    return dataclasses.replace(lease, ttl_seconds=ttl_seconds, expires_at=expires)


class Provisional:
    """The provisional-lease bookkeeping of one daemon (see the module docstring)."""

    def __init__(self, db: StateDB, store: LeaseStore, window_s: float = DEFAULT_WINDOW_S) -> None:
        self._db = db
        self._store = store
        self.window_s = window_s
        self._crash_at = os.environ.get(CRASH_ENV)

    def ttl(self, asked: float | None) -> float:
        """The TTL a lease is committed with: the one asked for, at most the window."""
        return self.window_s if asked is None else min(asked, self.window_s)

    def listed(self, lease: Lease) -> None:
        """Step 2: the lease ``lease`` was just committed; list it as unconfirmed."""
        self._crash("lease-committed")
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO unconfirmed_leases (lease_id, granted_at) VALUES (?, ?)",
                (lease.lease_id, time.time()),
            )
        self._crash("lease-listed")

    def confirm(self, lease_id: int, ttl_seconds: float | None) -> Lease:
        """Step 3, delivered: the TTL asked for, off the list."""
        lease = self._store.set_ttl(lease_id, ttl_seconds)
        self._forget(lease_id)
        return lease

    def withdraw(self, lease_id: int) -> Lease | None:
        """Step 3, not delivered: release the lease (revoked); None when it had ended."""
        lease = self._store.get_lease(lease_id)
        ended = None
        if lease.active:
            ended = self._store.release(lease_id, user=UNDELIVERED_BY, admin=True)
            log.warning("lease %d on %s: its client left first; released", lease_id, lease.uuid)
        self._forget(lease_id)
        return ended

    def end_unconfirmed(self) -> list[Lease]:
        """Step 4, at start: end every lease still listed; the ones that were active."""
        rows = self._db.read("SELECT lease_id FROM unconfirmed_leases ORDER BY lease_id")
        ended = []
        for row in rows:
            lease_id = int(row[0])
            with contextlib.suppress(NotFoundError):  # its history row was pruned
                if self._store.get_lease(lease_id).active:
                    ended.append(self._store.release(lease_id, user=UNCONFIRMED_BY, admin=True))
            self._forget(lease_id)
        return ended

    def _forget(self, lease_id: int) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM unconfirmed_leases WHERE lease_id = ?", (lease_id,))

    def _crash(self, point: str) -> None:
        if self._crash_at == point:
            log.error("%s=%s: killing the daemon here (crash test)", CRASH_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)
