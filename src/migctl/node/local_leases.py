"""The lease and soft-device half of a :class:`~migctl.node.local.LocalNode`.

Why this module exists: ``LocalNode`` keeps one machine's GPUs, layouts and leases; the lease
calls (MIG devices and soft devices, the store they share, opened on first use and never
created by a read, the machine's MPS host and the soft devices it shows) live here so that each
module stays small. Identity: this process's user, unless the daemon passes the principal it
authenticated (``owner=``, ``user=``, ``admin=``). Only ``node.local`` imports it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.backends.base import Backend
    from migctl.engine.files import MachineFiles
    from migctl.engine.soft_plan import SoftTargets
    from migctl.leases import Lease, LeaseOwner, LeaseStore
    from migctl.leases.soft import SoftLedger
    from migctl.mps.host import MpsHost
    from migctl.node.device_cache import CandidateCache
    from migctl.planner import DesiredLayout
    from migctl.reports import SoftDeviceView
    from migctl.schemas.leases import LeaseRequest
    from migctl.settings import Settings

log = logging.getLogger(__name__)


class LocalLeases:
    """Lease calls over ``self.backend`` and the lease store of ``self.settings``."""

    backend: Backend
    settings: Settings
    device_cache: CandidateCache  # the MIG devices leased from (kept by a daemon's node)
    _store: LeaseStore | None

    @property
    def store(self) -> LeaseStore:
        """The lease store of this machine (opened on first use)."""
        if self._store is None:
            from migctl.leases import LeaseStore

            self._store = LeaseStore(self.settings.lease_db)
        return self._store

    @property
    def files(self) -> MachineFiles:
        raise NotImplementedError

    def soft_store(self) -> LeaseStore | None:
        """The lease store if it exists (reading never creates one)."""
        if self._store is None and not self.settings.lease_db.exists():
            return None
        return self.store

    @property
    def mps(self) -> MpsHost:
        """How this machine runs its MPS control daemons (soft devices)."""
        from migctl.node.soft import mps_host

        return mps_host(self.settings, self.backend.files_dir)

    def active_leases(self) -> list[Lease]:
        """Active leases; none (and no database created) while the store does not exist. A
        view never fails for the lease database: a damaged one gives no holders (logged)."""
        if self._store is not None:
            return self.store.list_leases(active_only=True)
        from migctl.tenancy.holders import active_leases

        return list(active_leases(self.settings.lease_db).values())

    def soft_devices(self, gpus: Sequence[int] | None = None) -> list[SoftDeviceView]:
        """The soft devices (MPS shares) of the chosen GPUs: parent, share, holder, server."""
        ledger = self._soft_ledger()
        if ledger is None or not (ledger.leases or ledger.slots):
            return []  # no soft device: the MPS modules stay unimported
        from migctl.node.soft import soft_views

        chosen = None if gpus is None else set(gpus)
        return soft_views(self.backend, ledger, self.mps, chosen)

    def _soft_ledger(self) -> SoftLedger | None:
        """The soft half of the lease store, read without creating or keeping a store; a view
        never fails for the lease database: a damaged one gives no soft devices (logged)."""
        if self._store is not None:
            return self._store.soft_ledger()
        if not self.settings.lease_db.exists():
            return None
        from migctl.errors import MigctlError
        from migctl.leases import LeaseStore

        try:
            with LeaseStore(self.settings.lease_db) as store:
                return store.soft_ledger()
        except MigctlError as error:
            log.warning("soft devices unavailable: %s", error.message)
            return None

    def _soft_preflight(
        self, soft: SoftTargets, targets: dict[int, DesiredLayout], force: bool
    ) -> None:
        """Refuse, before anything changes, soft shares the apply would cut off (unless force)."""
        from migctl.engine.apply import plan_machine
        from migctl.engine.soft_apply import preflight

        store = self.soft_store()
        if store is not None:
            plans, _ = plan_machine(self.backend, targets, force=force, files=self.files)
            preflight(self.backend, store, self.mps, soft, plans, force=force)

    def acquire(
        self,
        request: LeaseRequest,
        *,
        owner: LeaseOwner | None = None,
        withheld: Collection[str] = (),
    ) -> Lease:
        """Lease a MIG device, or with ``request.share`` a soft device; ``withheld`` (the
        daemon's): MIG device UUIDs that must not be granted now."""
        from migctl.leases import LeaseOwner
        from migctl.node.leasing import acquire_on

        who = owner or LeaseOwner.current(job=request.job, pid=request.pid)
        cache = self.device_cache
        found = functools.partial(cache.candidates, self.backend)
        try:
            return acquire_on(
                self.backend,
                self.store,
                request,
                who,
                withheld=withheld,
                mps=self.mps,
                found=found,
                profiles=self.profile_names() if request.profile else None,
            )
        finally:
            if request.create:  # it may have made a GPU instance
                cache.invalidate()

    def profile_names(self) -> frozenset[str]:
        """Every GI and CI profile name of this machine's MIG-capable GPUs (read once)."""
        return self.device_cache.profile_names(self.backend)

    def release(self, target: int | str, *, user: str | None = None, admin: bool = False) -> Lease:
        """End a lease; ``user`` and ``admin`` are the daemon's principal, else this process
        (which may revoke another user's lease only as root). A soft lease's parent loses its
        MPS daemon when nothing needs it."""
        from migctl.node.leasing import caller_name, lease_target, refuse_admin_unless_root
        from migctl.tenancy.soft import after_release

        if user is None and admin:
            refuse_admin_unless_root()
        ended = self.store.release(lease_target(target), user=user or caller_name(), admin=admin)
        after_release(self.store, self.mps, ended)
        return ended

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
