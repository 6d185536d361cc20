"""The dashboard's JSON feed (``GET /v1/dashboard``): everything the page draws, in one answer.

Why this module exists: the page (``static/dashboard.js``) polls one document every ~2 s and
redraws: the GPUs with their instances, MIG devices, memory use and leases (the inventory's own
shapes, ``migctl.schemas.machine.GpuOut``, so the page and the API never disagree), the soft
devices (MPS shares, with their isolation: soft), the lease requests waiting in
the queue (in service order, with priority and, when the daemon repartitions, why each waits),
and the recent reconfigurations (jobs). One request per poll keeps the daemon's cost
per open page small and every part of the picture from the same moment.

Privacy follows the API (``InventoryOut.of``, ``Principal.may_see``): a user sees the owner
of their own leases and waiting requests only (others show as redacted), and the message of a
job only when an admin asks (a failed apply's message may name other users' leases). Only ``migctl.server`` imports it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from migctl.reports import Inventory
from migctl.schemas.machine import GpuOut, InventoryOut
from migctl.schemas.soft import SoftDeviceOut
from migctl.server.auth import Principal
from migctl.server.bodies import PrincipalOut
from migctl.server.jobs import Job
from migctl.server.waiters import Waiter

REFRESH_S = 2.0  # how often the page polls
RECENT_JOBS = 8


class WaitingOut(BaseModel):
    """A lease request waiting for a device; ``user`` and ``job`` are null when redacted."""

    position: int  # 1 = served first
    since: float  # when the request arrived (epoch seconds)
    mine: bool
    redacted: bool
    user: str | None
    job: str | None
    profile: str | None
    memory_mib: int | None
    sms: int | None
    uuid: str | None
    priority: int = 0
    reason: str | None = None  # why it waits (repartitioning on): a WaitReason value, reshaping
    detail: str | None = None  # the reason in words (never names another user)


class ReconfigurationOut(BaseModel):
    """A recent job that changed (or tried to change) the GPUs."""

    job_id: int
    kind: str
    status: str
    requested_by: str
    gpus: list[int]
    created_at: float
    started_at: float | None
    finished_at: float | None
    message: str | None  # null unless an admin asks


class DashboardOut(BaseModel):
    generated_at: float
    refresh_s: float
    version: str
    backend: str
    you: PrincipalOut
    gpus: list[GpuOut]
    soft_devices: list[SoftDeviceOut]  # MPS shares, each with its isolation (soft)
    waiting: list[WaitingOut]
    reconfigurations: list[ReconfigurationOut]


def waiting_out(position: int, waiter: Waiter, viewer: Principal) -> WaitingOut:
    owner = waiter.owner
    mine = owner is not None and owner.user == viewer.name
    visible = owner is not None and viewer.may_see(owner.user)
    request = waiter.request
    return WaitingOut(
        position=position,
        since=waiter.since,
        mine=mine,
        redacted=not visible,
        user=owner.user if visible and owner else None,
        job=owner.job if visible and owner else None,
        profile=request.profile if waiter.share is None else waiter.share.describe(),
        memory_mib=request.min_memory_mib,
        sms=request.min_sm_count,
        uuid=request.uuid,
        priority=waiter.priority,
        reason=waiter.reason,
        detail=waiter.detail,
    )


def job_gpus(request: dict[str, Any]) -> list[int]:
    """The GPUs a job's request names (``gpus``, ``targets`` keys, or ``gpu``)."""
    found: set[int] = set()
    targets = request.get("targets")
    if isinstance(targets, dict):
        found.update(int(key) for key in targets if str(key).isdigit())
    gpus = request.get("gpus")
    if isinstance(gpus, list):
        found.update(gpu for gpu in gpus if isinstance(gpu, int))
    gpu = request.get("gpu")
    if isinstance(gpu, int):
        found.add(gpu)
    return sorted(found)


def reconfiguration_out(job: Job, viewer: Principal) -> ReconfigurationOut:
    return ReconfigurationOut(
        job_id=job.job_id,
        kind=job.kind,
        status=str(job.status),
        requested_by=job.requested_by,
        gpus=job_gpus(job.request),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        message=job.message if viewer.is_admin else None,
    )


def dashboard_out(
    *,
    inventory: Inventory,
    waiters: list[Waiter],
    jobs: list[Job],
    viewer: Principal,
    version: str,
    backend: str,
) -> DashboardOut:
    """The feed as ``viewer`` may see it."""
    seen = InventoryOut.of(inventory, viewer=viewer.name, admin=viewer.is_admin)
    return DashboardOut(
        generated_at=time.time(),
        refresh_s=REFRESH_S,
        version=version,
        backend=backend,
        you=PrincipalOut.of(viewer),
        gpus=seen.gpus,
        soft_devices=seen.soft_devices,
        waiting=[waiting_out(n, w, viewer) for n, w in enumerate(waiters, start=1)],
        reconfigurations=[reconfiguration_out(job, viewer) for job in jobs],
    )
