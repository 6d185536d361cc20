"""The critical section of every destroy: nobody is granted a device between "is it leased?"
and "destroy it".

Why this exists: ``apply`` plans from the leases it reads, then executes; a ``migctl lease
acquire`` racing it could commit a lease on a device after the apply's last look and before the
destroy (the lease then names a destroyed device, and its holder loses its work), or read the
device list before the destroy and lease the device after it. So each compute instance the apply
destroys is destroyed inside :meth:`LeaseStore.fenced`: the lease store's write lock is held
from the lease check to the end of the destroy, and every acquire reads the devices that exist
under that same lock. The lease store is opened (created if need be) for every apply that
destroys something, so a first lease cannot slip in while the database is being made. A MIG
device shared out through MPS counts as leased while a soft lease holds one of its shares, and
the soft devices a layout made on it go with it (in the same transaction).

The explicit destroys (``gi destroy``, ``ci destroy``: ``migctl.workflow``) use the same fence,
after :meth:`DestroyFence.refuse_leased` refused the whole request up front when any device it
would destroy is leased. Imported by the apply engine and the workflow; it imports the backend
protocol, the lease store and ``migctl.errors``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.backends.base import Backend
from migctl.errors import InUseError

if TYPE_CHECKING:
    from migctl.leases import LeaseStore


class DestroyFence:
    """Destroys compute instances of ``backend`` only while no lease can be granted."""

    def __init__(self, backend: Backend, lease_db: Path | None, *, force: bool = False) -> None:
        self.backend = backend
        self.lease_db = lease_db
        self.force = force
        self._store: LeaseStore | None = None

    @contextlib.contextmanager
    def destroying(self, gpu: int, gi_id: int, ci_id: int) -> Iterator[None]:
        """Run the block (the destroy) under the lease store's write lock; refuse a leased
        device unless forced."""
        uuid = next(
            (d.uuid for d in self.backend.mig_devices(gpu) if (d.gi_id, d.ci_id) == (gi_id, ci_id)),
            None,
        )
        if uuid is None or self.lease_db is None:  # nothing anyone could lease
            yield
            return
        with self.store().fenced(uuid, drop_soft_slots=True) as lease:
            if lease is not None and not self.force:
                raise InUseError(
                    f"GPU {gpu}: compute instance {ci_id} of GI {gi_id} ({uuid}) was leased "
                    f"after planning: {lease.describe_holder()}",
                    hint="release the lease, or apply again (the new plan will keep it)",
                    context={"gpu": gpu, "uuid": uuid, "lease_id": lease.lease_id},
                )
            yield

    def refuse_leased(
        self, gpu: int, gi_ids: Sequence[int], ci_ids: Sequence[int] | None = None
    ) -> None:
        """Refuse, before anything is destroyed, when a MIG device of the GIs ``gi_ids`` (only
        the CIs ``ci_ids`` of a single GI, when given) is leased."""
        if self.lease_db is None or self.force or not self.lease_db.exists():
            return
        held = [
            lease
            for lease in self.store().list_leases(active_only=True)
            if lease.gpu_index == gpu
            and lease.gi_id in gi_ids
            and (ci_ids is None or lease.ci_id in ci_ids)
        ]
        if held:
            detail = "; ".join(
                f"GI {x.gi_id} CI {x.ci_id} ({x.uuid}): lease {x.lease_id}, {x.describe_holder()}"
                for x in held
            )
            raise InUseError(
                f"GPU {gpu}: cannot destroy leased MIG devices: {detail}",
                hint="release the leases first (`migctl lease list`); nothing was destroyed",
                context={"gpu": gpu, "leases": [x.lease_id for x in held]},
            )

    def store(self) -> LeaseStore:
        if self._store is None:
            from migctl.leases import LeaseStore

            assert self.lease_db is not None
            self._store = LeaseStore(self.lease_db)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
