"""Read-only routes: health, who am I, daemon status, inventory, catalog, desired layout.

Why this module exists: what any authenticated local user (or token) may look at. Inventory
hides other users' lease owners and process details (see ``views``). Only ``server.app``
imports it.
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from migctl.server.deps import Caller, Svc
from migctl.server.layouts import desired_to_spec
from migctl.server.views import InventoryOut, PrincipalOut, inventory_out, principal_out
from migctl.server.views_more import (
    DesiredGpuOut,
    DesiredLayoutOut,
    GpuProfilesOut,
    HealthOut,
    ModelOut,
    ModelSummaryOut,
    StatusOut,
    gpu_profiles_out,
    model_out,
    model_summary_out,
)

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["daemon"], summary="Liveness (no authentication)")
async def health(service: Svc) -> HealthOut:
    return HealthOut(ok=True, version=service.version)


@router.get("/whoami", tags=["daemon"], summary="Who the daemon thinks you are, and your role")
async def whoami(principal: Caller) -> PrincipalOut:
    return principal_out(principal)


@router.get("/status", tags=["daemon"], summary="Daemon status: backend, counts, start-up notes")
async def status(service: Svc, principal: Caller) -> StatusOut:
    counts = await service.blocking.run(service.status_counts)
    return StatusOut(
        version=service.version,
        backend=service.gpu.backend.description,
        started_at=service.started_at,
        uptime_s=round(time.time() - service.started_at, 3),
        listeners=service.config.listeners(),
        admin_group=service.config.admin_group,
        startup=service.startup_notes,
        repartition=service.repartition_status(),
        you=principal_out(principal),
        **counts,
    )


@router.get(
    "/inventory", tags=["inventory"], summary="GPUs, instances, MIG devices, processes, leases"
)
async def inventory(service: Svc, principal: Caller) -> InventoryOut:
    views, leases = await service.blocking.run(service.machine)
    return inventory_out(views, leases, principal)


@router.get(
    "/gpus/{index}/profiles",
    tags=["inventory"],
    summary="A GPU's instance profiles with free/total counts, read live (like mig -lgip)",
)
async def gpu_profiles(index: int, service: Svc, principal: Caller) -> GpuProfilesOut:
    found = await service.blocking.run(service.profiles, index)
    return gpu_profiles_out(found)


@router.get("/catalog", tags=["catalog"], summary="Every GPU model migctl knows")
async def catalog(service: Svc, principal: Caller) -> list[ModelSummaryOut]:
    return [model_summary_out(m) for m in service.catalog.models]


@router.get("/catalog/{model}", tags=["catalog"], summary="One GPU model's MIG geometry")
async def catalog_model(model: str, service: Svc, principal: Caller) -> ModelOut:
    return model_out(service.catalog.get(model))


@router.get("/layout", tags=["layouts"], summary="The desired layout the daemon keeps applied")
async def desired_layout(service: Svc, principal: Caller) -> DesiredLayoutOut:
    rows = await service.blocking.run(service.desired.rows)
    return DesiredLayoutOut(
        gpus=[
            DesiredGpuOut(
                gpu_index=row.gpu_index,
                layout=desired_to_spec(row.layout),
                updated_at=row.updated_at,
                updated_by=row.updated_by,
                job_id=row.job_id,
            )
            for row in rows
        ]
    )
