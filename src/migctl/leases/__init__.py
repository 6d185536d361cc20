"""MIG device leases: grant each MIG device to at most one owner at a time (SQLite store).

Why this package exists: MIG lets several people and jobs share a GPU; leases make sure two of
them are never handed the same MIG device. ``migctl run``, the ``migctl lease`` verbs and the
REST service build on :class:`LeaseStore`. The package never touches hardware: callers pass the
current MIG devices in as :class:`DeviceCandidate` values.

The split with :mod:`migctl.tenancy`: ``leases`` is the *record* (who holds which device, the
SQLite store, its rules: one holder, TTLs, dead holders, history), knowing nothing of GPUs;
``tenancy`` is the *hand-out* (the live machine's devices as candidates, creating one on
demand, running a command on a leased device, Docker/CDI/Kubernetes/Slurm). A name here never
touches hardware; a name there always works for a machine.

Anyone above the backends may import this package; it imports only ``migctl.errors`` and
``migctl.model`` (never backends or sim).

Typical use::

    store = LeaseStore(settings.lease_db)                 # Settings say which file
    devices = [DeviceCandidate.from_mig_device(d) for d in backend_mig_devices]
    lease = store.acquire(DeviceRequest(profile="1g.10gb"), LeaseOwner.current(pid=os.getpid()),
                          devices, ttl_seconds=600, wait_seconds=30)
    ...                                                   # run with CUDA_VISIBLE_DEVICES=lease.uuid
    store.release(lease.lease_id, user=lease.user)
"""

from migctl.leases.schema import MIGRATIONS, Migration
from migctl.leases.store import LeaseStore
from migctl.leases.types import DeviceCandidate, DeviceRequest, EndReason, Lease, LeaseOwner
from migctl.leases.waiting import Backoff

__all__ = [
    "MIGRATIONS",
    "Backoff",
    "DeviceCandidate",
    "DeviceRequest",
    "EndReason",
    "Lease",
    "LeaseOwner",
    "LeaseStore",
    "Migration",
]
