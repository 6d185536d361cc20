"""The lease store's soft half: grant soft devices, read the soft ledger, edit slots.

Why this module exists: :class:`~migctl.leases.store.LeaseStore` grants MIG devices; soft devices
(MPS shares, see :mod:`migctl.leases.soft`) go through the same database, the same write
transactions and the same reaping, so that the guarantees are the same: a share is granted
once, a holder that died frees it, and the caller's admission rules see every share granted
on the parent at the moment of the grant. Kept apart from the MIG half so each stays small;
:class:`SoftLeases` is a base class of ``LeaseStore`` and uses its transaction helpers.

Only ``migctl.leases.store`` imports this module.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from migctl.leases import rows, soft
from migctl.leases.types import Lease, LeaseOwner, SoftGrant
from migctl.leases.waiting import Backoff, acquire_loop, check_request

logger = logging.getLogger(__name__)

ChooseShare = Callable[[soft.SoftLedger], SoftGrant]


class SoftLeases:
    """Soft grants and slots (a base of ``LeaseStore``; see the module docstring)."""

    _backoff: Backoff

    # provided by LeaseStore
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _reap_in(self, conn: sqlite3.Connection, now: float) -> list[rows.StoredLease]:
        raise NotImplementedError

    def _now(self) -> float:
        raise NotImplementedError

    def _holder_start_ticks(self, owner: LeaseOwner) -> int | None:
        raise NotImplementedError

    def acquire_soft(
        self,
        owner: LeaseOwner,
        choose: ChooseShare,
        *,
        ttl_seconds: float | None = None,
        wait_seconds: float = 0.0,
    ) -> Lease:
        """Lease the soft device ``choose(ledger)`` returns to ``owner``.

        ``choose`` runs inside the write transaction, on the ledger of this moment (stale leases
        already ended): it applies the admission rules and raises when nothing can be granted
        (InsufficientResourcesError and InUseError are retried while ``wait_seconds`` last).
        """
        check_request(owner, ttl_seconds, wait_seconds)
        start_ticks = self._holder_start_ticks(owner)

        def attempt() -> Lease:
            with self._transaction() as conn:
                now = self._now()
                grant = choose(soft.ledger(conn, self._reap_in(conn, now)))
                lease_id = rows.insert_soft(
                    conn,
                    grant,
                    owner,
                    now=now,
                    ttl_seconds=ttl_seconds,
                    holder_start_ticks=start_ticks,
                )
                stored = rows.fetch_one(conn, lease_id)
            assert stored is not None
            logger.info("leased soft device %s to %s", grant.describe(), owner.describe())
            return stored.lease

        return acquire_loop(attempt, wait_seconds=wait_seconds, backoff=self._backoff)

    def soft_ledger(self) -> soft.SoftLedger:
        """Active soft leases, slots and MIG leases now (stale leases ended first)."""
        with self._transaction() as conn:
            return soft.ledger(conn, self._reap_in(conn, self._now()))

    @contextmanager
    def soft_editing(self) -> Iterator[soft.SoftEditor]:
        """Change slots (and revoke soft leases) in one write transaction; no lease is granted
        meanwhile. An exception in the block undoes every change of the block."""
        with self._transaction() as conn:
            now = self._now()
            yield soft.SoftEditor(conn, soft.ledger(conn, self._reap_in(conn, now)), now)
