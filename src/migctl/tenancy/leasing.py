"""Acquire and release MIG device leases against the live machine.

Why this exists: the lease store knows nothing about hardware; the verbs that lease devices
(``migctl lease acquire``, ``run``, ``env``, the service later) all need "the store at the
usual path, the machine's MIG devices as candidates, optionally a device created on demand",
and a release that never fails a job's exit path. Importers: ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migctl.backends.base import Backend
from migctl.errors import InvalidStateError, MigctlError, NotFoundError, UsageError
from migctl.leases import DeviceCandidate, Lease, LeaseOwner, LeaseStore
from migctl.mps.host import MpsHost
from migctl.tenancy.selection import DeviceSelection, candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AcquireOptions:
    """How long the lease lasts, how long to wait for one, and whether to create a device.

    ``priority`` orders requests waiting on the migctl daemon (its demand-driven
    repartitioning serves larger first); the local lease store serves waiters as they come.
    ``withheld``: MIG device UUIDs never to grant (the daemon's devices that a reshape is about
    to destroy). ``candidates``: where the MIG devices come from (a daemon's list kept a few
    seconds, ``migctl.node.device_cache``); default, and always with ``create``: the machine
    read at each try.
    """

    ttl_seconds: float | None = None
    wait_seconds: float = 0.0
    create: bool = False
    priority: int | None = None
    withheld: frozenset[str] = frozenset()
    mps: MpsHost | None = None  # how this machine runs MPS daemons (soft devices, --share)
    candidates: Callable[[], list[DeviceCandidate]] | None = None


def open_store(path: Path | str) -> LeaseStore:
    """The lease store at ``path`` (``Settings.lease_db``)."""
    return LeaseStore(path)


def acquire(
    backend: Backend,
    store: LeaseStore,
    selection: DeviceSelection,
    owner: LeaseOwner,
    options: AcquireOptions,
) -> Lease:
    """Lease the smallest free MIG device matching ``selection`` to ``owner``.

    The machine is read again on every poll while waiting, so devices created or freed in the
    meantime are seen. With ``options.create``, a new GPU instance is made in free slices when
    nothing free matches (see :mod:`migctl.tenancy.creation`). A selection with a share
    (``--share``) leases a soft device instead (:mod:`migctl.tenancy.soft`).
    """
    if selection.soft:
        return _acquire_soft(backend, store, selection, owner, options)
    selection.check_soft()
    create = None
    if options.create:
        from migctl.tenancy.creation import device_creator  # planner + workflow: only if asked

        create = device_creator(backend)
    withheld = options.withheld
    found = options.candidates if options.candidates and not options.create else None

    def read() -> list[DeviceCandidate]:
        return found() if found is not None else candidates(backend)

    return store.acquire(
        selection.request(),
        owner,
        lambda: [c for c in read() if c.uuid not in withheld],
        ttl_seconds=options.ttl_seconds,
        wait_seconds=options.wait_seconds,
        create_device=create,
    )


def _acquire_soft(
    backend: Backend,
    store: LeaseStore,
    selection: DeviceSelection,
    owner: LeaseOwner,
    options: AcquireOptions,
) -> Lease:
    from migctl.tenancy.soft import acquire_soft

    if options.create:
        raise UsageError(
            "--create makes MIG instances; a soft device (--share) is carved from an existing "
            "GPU or MIG device",
            hint="drop --create",
        )
    if options.mps is None:
        raise UsageError(
            "soft devices need to know how this machine runs MPS",
            hint="lease through a Node (migctl.open_node), which knows it from its Settings",
        )
    return acquire_soft(
        backend,
        store,
        selection,
        owner,
        options.mps,
        ttl_seconds=options.ttl_seconds,
        wait_seconds=options.wait_seconds,
    )


def release_quietly(store: LeaseStore, lease: Lease, mps: MpsHost | None = None) -> Lease | None:
    """Release ``lease`` as its owner; a lease that already ended (or vanished) is no error.

    Returns the ended lease, or None when it had already ended or could not be released (the
    store then ends it anyway once its holder process is gone or its TTL passes). A soft
    lease's parent loses its MPS daemon when nothing needs it any more (given ``mps``).
    """
    try:
        return store.release(lease.lease_id, user=lease.user)
    except (InvalidStateError, NotFoundError):
        return None
    except MigctlError as error:
        log.warning("could not release lease %d: %s", lease.lease_id, error.message)
        return None
    finally:
        if lease.soft and mps is not None:
            from migctl.tenancy.soft import after_release

            after_release(store, mps, lease)
