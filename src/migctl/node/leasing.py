"""A lease request (the wire form) -> a lease from this machine's store.

Why this module exists: ``LocalNode.acquire`` and the daemon's waiting acquire both turn a
:class:`~migctl.schemas.leases.LeaseRequest` into the tenancy layer's selection and options and
lease against the live machine (a MIG device, or with a share a soft device); one translation,
used by both.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from pydantic import BaseModel

from migctl.backends.base import Backend
from migctl.leases import Lease, LeaseOwner, LeaseStore
from migctl.mps.host import MpsHost
from migctl.schemas.leases import LeaseRequest
from migctl.tenancy.leasing import AcquireOptions, acquire
from migctl.tenancy.selection import DeviceSelection


def selection_of(request: LeaseRequest) -> DeviceSelection:
    return DeviceSelection(
        profile=request.profile,
        min_memory_mib=request.memory_mib,
        min_sm_count=request.sms,
        device_uuid=request.uuid,
        share_percent=request.share,
        parent=request.parent,
        oversubscribe=request.oversubscribe,
        allow_other_user=request.allow_other_user,
    )


def options_of(request: LeaseRequest, mps: MpsHost | None = None) -> AcquireOptions:
    return AcquireOptions(
        ttl_seconds=request.ttl_seconds,
        wait_seconds=request.wait_seconds,
        create=request.create,
        priority=request.priority,
        mps=mps,
    )


def acquire_on(
    backend: Backend,
    store: LeaseStore,
    request: LeaseRequest,
    owner: LeaseOwner,
    mps: MpsHost | None = None,
) -> Lease:
    """Lease the smallest free MIG device meeting ``request`` to ``owner`` (waiting if asked),
    or with ``request.share`` a soft device (``mps`` says how this machine runs MPS)."""
    return acquire(backend, store, selection_of(request), owner, options_of(request, mps))


def acquire_soft_on(
    gpu: GpuAccessLike,
    store: LeaseStore,
    body: BaseModel,
    owner: LeaseOwner,
    mps: MpsHost | None,
    *,
    provisional: ProvisionalLike | None = None,
) -> Lease:
    """The daemon's soft acquire: ``body`` (its lease request, with a share) leased to
    ``owner`` on the daemon's backend, under its lock; with ``provisional``, granted with the
    short TTL that a lease keeps until its answer was delivered, and listed as unconfirmed."""
    request = LeaseRequest.model_validate(body.model_dump())
    if provisional is not None:
        request = request.model_copy(update={"ttl_seconds": provisional.ttl(request.ttl_seconds)})
    with gpu.locked() as backend:
        lease = acquire_on(backend, store, request, owner, mps)
    if provisional is not None:
        provisional.listed(lease)
    return lease


class GpuAccessLike(Protocol):
    def locked(self) -> AbstractContextManager[Backend]: ...


class ProvisionalLike(Protocol):
    def ttl(self, asked: float | None) -> float: ...

    def listed(self, lease: Lease) -> None: ...
