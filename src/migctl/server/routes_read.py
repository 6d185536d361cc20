"""Read-only routes: health, who am I, daemon status, the machine, profiles, models, the
desired layout.

Why this module exists: what any authenticated local user (or token) may look at. The machine
is read by the daemon's ``LocalNode`` (the same values ``migctl list`` shows) and answered in
the ``migctl.schemas`` models that ``RemoteNode`` reads back; a user sees the owner of their own
leases only, and other users' processes without user and command (``InventoryOut.of``).
Only ``server.app`` imports it.
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from migctl.schemas.machine import InventoryOut, ModelsOut
from migctl.schemas.reports import GpuProfilesOut
from migctl.server.bodies import (
    DesiredGpuOut,
    DesiredLayoutOut,
    HealthOut,
    PrincipalOut,
    StatusOut,
)
from migctl.server.deps import Caller, GpuPath, GpusQuery, Svc

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["daemon"], summary="Liveness (no authentication)")
async def health(service: Svc) -> HealthOut:
    return HealthOut(ok=True, version=service.version)


@router.get("/whoami", tags=["daemon"], summary="Who the daemon thinks you are, and your role")
async def whoami(principal: Caller) -> PrincipalOut:
    return PrincipalOut.of(principal)


@router.get("/status", tags=["daemon"], summary="Daemon status: backend, counts, start-up notes")
async def status(service: Svc, principal: Caller) -> StatusOut:
    counts = await service.blocking.run(service.status_counts)
    return StatusOut(
        version=service.version,
        backend=service.node.description,
        started_at=service.started_at,
        uptime_s=round(time.time() - service.started_at, 3),
        listeners=service.config.listeners(),
        admin_group=service.config.admin_group,
        startup=service.startup_notes,
        repartition=service.repartition_status(),
        you=PrincipalOut.of(principal),
        **counts,
    )


@router.get(
    "/inventory", tags=["machine"], summary="GPUs, instances, MIG devices, processes, leases"
)
async def inventory(service: Svc, principal: Caller, gpus: GpusQuery = None) -> InventoryOut:
    found = await service.on_gpus(service.node.inventory, gpus)
    return InventoryOut.of(found, viewer=principal.name, admin=principal.is_admin)


@router.get(
    "/gpus/{gpu}/profiles",
    tags=["machine"],
    summary="A GPU's instance profiles with free/total counts, read live (like mig -lgip)",
)
async def gpu_profiles(gpu: GpuPath, service: Svc, principal: Caller) -> GpuProfilesOut:
    return GpuProfilesOut.of(await service.on_gpus(service.node.profiles, gpu))


@router.get("/models", tags=["machine"], summary="The live MIG geometry of the chosen GPUs")
async def models(service: Svc, principal: Caller, gpus: GpusQuery = None) -> ModelsOut:
    return ModelsOut(models=await service.on_gpus(service.node.models, gpus))


@router.get("/layout", tags=["layouts"], summary="The desired layout the daemon keeps applied")
async def desired_layout(service: Svc, principal: Caller) -> DesiredLayoutOut:
    rows = await service.blocking.run(service.desired.rows)
    return DesiredLayoutOut(
        gpus=[
            DesiredGpuOut.of(
                row.gpu_index,
                row.layout,
                at=row.updated_at,
                by=row.updated_by,
                job_id=row.job_id,
            )
            for row in rows
        ]
    )
