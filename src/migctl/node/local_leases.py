"""The lease half of a :class:`~migctl.node.local.LocalNode`: its store, acquire, release, renew.

Why this module exists: ``LocalNode`` keeps one machine's GPUs, layouts and leases; the lease
calls (and the store they share, opened on first use and never created by a read) live here so
that each module stays small. Identity: this process's user, unless the daemon passes the
principal it authenticated (``owner=``, ``user=``, ``admin=``). Only ``node.local`` imports it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.backends.base import Backend
    from migctl.leases import Lease, LeaseOwner, LeaseStore
    from migctl.schemas.leases import LeaseRequest
    from migctl.settings import Settings


class LocalLeases:
    """Lease calls over ``self.backend`` and the lease store of ``self.settings``."""

    backend: Backend
    settings: Settings
    _store: LeaseStore | None

    @property
    def store(self) -> LeaseStore:
        """The lease store of this machine (opened on first use)."""
        if self._store is None:
            from migctl.leases import LeaseStore

            self._store = LeaseStore(self.settings.lease_db)
        return self._store

    def active_leases(self) -> list[Lease]:
        """Active leases; none (and no database created) while the store does not exist. A
        view never fails for the lease database: a damaged one gives no holders (logged)."""
        if self._store is not None:
            return self.store.list_leases(active_only=True)
        from migctl.tenancy.holders import active_leases

        return list(active_leases(self.settings.lease_db).values())

    def acquire(
        self,
        request: LeaseRequest,
        *,
        owner: LeaseOwner | None = None,
        withheld: Collection[str] = (),
    ) -> Lease:
        """``withheld`` (the daemon's): MIG device UUIDs that must not be granted now."""
        from migctl.leases import LeaseOwner
        from migctl.node.leasing import acquire_on

        who = owner or LeaseOwner.current(job=request.job, pid=request.pid)
        return acquire_on(self.backend, self.store, request, who, withheld)

    def release(self, target: int | str, *, user: str | None = None, admin: bool = False) -> Lease:
        """End a lease; ``user`` and ``admin`` are the daemon's principal, else this process
        (which may revoke another user's lease only as root)."""
        from migctl.node.leasing import caller_name, lease_target, refuse_admin_unless_root

        if user is None and admin:
            refuse_admin_unless_root()
        return self.store.release(lease_target(target), user=user or caller_name(), admin=admin)

    def renew(
        self, target: int | str, ttl_seconds: float | None = None, *, user: str | None = None
    ) -> Lease:
        from migctl.node.leasing import caller_name

        return self.store.renew(
            self._lease_id(target), ttl_seconds=ttl_seconds, user=user or caller_name()
        )

    def _lease_id(self, target: int | str) -> int:
        from migctl.node.leasing import lease_target

        found = lease_target(target)
        if isinstance(found, int):
            return found
        lease = self.store.get(found)
        if lease is None:
            from migctl.errors import NotFoundError

            raise NotFoundError(
                f"no active lease on {found}",
                hint="see `migctl lease list`",
                context={"lease": found},
            )
        return lease.lease_id

    def leases(self, *, history: bool = False, mine: bool = False) -> list[Lease]:
        from migctl.node.leasing import caller_name

        if self._store is None and not self.settings.lease_db.exists():
            return []
        return self.store.list_leases(active_only=not history, user=caller_name() if mine else None)
