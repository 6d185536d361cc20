"""The lease and soft-device half of ``LocalNode``: acquire, release, renew, list, MPS.

Why this module exists: ``LocalNode`` does every verb of one machine; its leasing side (MIG
devices and soft devices, the machine's MPS host, the soft devices it shows) is kept here as a
base class so each file stays small. Identity: lease calls take the caller's identity from this
process unless the daemon passes the principal it authenticated (``owner=``, ``user=``,
``admin=``). Only ``node.local`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.backends.base import Backend
    from migctl.engine.files import MachineFiles
    from migctl.engine.soft_plan import SoftTargets
    from migctl.leases import Lease, LeaseOwner, LeaseStore
    from migctl.mps.host import MpsHost
    from migctl.planner import DesiredLayout
    from migctl.reports import SoftDeviceView
    from migctl.schemas.leases import LeaseRequest
    from migctl.settings import Settings


class LocalLeasing:
    """Leases and soft devices of a ``LocalNode`` (its base class)."""

    settings: Settings
    backend: Backend
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

    def soft_devices(self, gpus: Sequence[int] | None = None) -> list[SoftDeviceView]:
        """The soft devices (MPS shares) of the chosen GPUs: parent, share, holder, server."""
        from migctl.node.soft import soft_views

        store = self.soft_store()
        if store is None:
            return []
        chosen = None if gpus is None else set(gpus)
        return soft_views(self.backend, store.soft_ledger(), self.mps, chosen)

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

    def acquire(self, request: LeaseRequest, *, owner: LeaseOwner | None = None) -> Lease:
        from migctl.leases import LeaseOwner
        from migctl.node.leasing import acquire_on

        who = owner or LeaseOwner.current(job=request.job, pid=request.pid)
        return acquire_on(self.backend, self.store, request, who, self.mps)

    def release(self, target: int | str, *, user: str | None = None, admin: bool = False) -> Lease:
        """End a lease; a soft lease's parent loses its MPS daemon when nothing needs it."""
        from migctl.tenancy.soft import after_release

        ended = self.store.release(_lease_target(target), user=user or _me(), admin=admin)
        after_release(self.store, self.mps, ended)
        return ended

    def renew(
        self, target: int | str, ttl_seconds: float | None = None, *, user: str | None = None
    ) -> Lease:
        return self.store.renew(self._lease_id(target), ttl_seconds=ttl_seconds, user=user or _me())

    def _lease_id(self, target: int | str) -> int:
        found = _lease_target(target)
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
        if self._store is None and not self.settings.lease_db.exists():
            return []
        return self.store.list_leases(active_only=not history, user=_me() if mine else None)


def _me() -> str:
    from migctl.leases import LeaseOwner

    return LeaseOwner.current().user


def _lease_target(target: int | str) -> int | str:
    """A lease id (``7``, ``"7"``) or a MIG device UUID."""
    if isinstance(target, int):
        return target
    text = target.strip()
    return int(text) if text.isdigit() else text
