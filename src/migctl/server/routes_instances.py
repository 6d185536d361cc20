"""Explicit instance routes (admins, as jobs): the ``nvidia-smi mig -cgi/-dgi/-cci/-dci`` of the
daemon.

Why this module exists: ``RemoteNode.create_gpu_instances`` and its siblings reach the daemon's
``LocalNode`` here. The GPU is checked before a job is queued (an unknown GPU: 404, nothing
changed); the change runs as a job whose result is ``GpuInstancesOut``, ``ComputeInstancesOut``
or ``DestroyedOut``, and the layout it leaves becomes the one the daemon re-applies at start.
Only ``server.app`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request, Response

from migctl.node.local import LocalNode
from migctl.schemas.changes import (
    ComputeInstancesRequest,
    GpuInstancesRequest,
    InstanceIdsRequest,
)
from migctl.schemas.machine import (
    ComputeInstanceOut,
    ComputeInstancesOut,
    DestroyedOut,
    GiOut,
    GpuInstancesOut,
)
from migctl.server import audit
from migctl.server.auth import Principal
from migctl.server.bodies import JobOut
from migctl.server.changes import submit_change
from migctl.server.deps import Admin, GpuPath, Svc
from migctl.server.routes_layouts import accepted
from migctl.server.service import Service

router = APIRouter(prefix="/v1/gpus/{gpu}/gpu-instances", tags=["instances"])
GiPath = Annotated[int, Path(ge=0, le=1_000_000)]
T = TypeVar("T")


async def _gpu_index(service: Service, gpu: str) -> int:
    """The GPU's index (404 before any job when there is no such GPU)."""
    return await service.on_gpus(service.node.one_gpu, gpu)


async def _queued(
    service: Service,
    principal: Principal,
    request: Request,
    response: Response,
    *,
    kind: str,
    record: dict[str, Any],
    change: Callable[[LocalNode], T],
    says: Callable[[T], str],
) -> JobOut:
    """Queue ``change`` of the GPU ``record["gpu"]`` as a job; 202 with the job."""
    audit.note(request, kind, f"gpu {record['gpu']}", **record)
    job = await service.blocking.run(
        submit_change,
        service,
        kind,
        record,
        principal,
        change=change,
        says=says,
        gpus=[record["gpu"]],
    )
    audit.add_detail(request, job_id=job.job_id)
    return accepted(job, response)


@router.post("", status_code=202, summary="Create GPU instances, all or nothing (admin; a job)")
async def create_gpu_instances(
    gpu: GpuPath,
    *,
    body: GpuInstancesRequest,
    service: Svc,
    principal: Admin,
    request: Request,
    response: Response,
) -> JobOut:
    index = await _gpu_index(service, gpu)

    def change(node: LocalNode) -> GpuInstancesOut:
        made = node.create_gpu_instances(index, body.profiles, with_ci=body.with_ci)
        return GpuInstancesOut(gpu_instances=[GiOut.of(gi) for gi in made])

    def says(out: GpuInstancesOut) -> str:
        return f"GPU {index}: created GPU instance(s) {_ids([gi.id for gi in out.gpu_instances])}"

    record = {"gpu": index, **body.model_dump(mode="json")}
    return await _queued(
        service, principal, request, response,
        kind="gpu-instances create", record=record, change=change, says=says,
    )  # fmt: skip


@router.post("/destroy", status_code=202, summary="Destroy GPU instances (admin; a job)")
async def destroy_gpu_instances(
    gpu: GpuPath,
    *,
    body: InstanceIdsRequest,
    service: Svc,
    principal: Admin,
    request: Request,
    response: Response,
) -> JobOut:
    index = await _gpu_index(service, gpu)

    def change(node: LocalNode) -> DestroyedOut:
        return DestroyedOut(gpu=index, ids=node.destroy_gpu_instances(index, body.ids))

    def says(out: DestroyedOut) -> str:
        return f"GPU {index}: destroyed GPU instance(s) {_ids(out.ids)}"

    return await _queued(
        service, principal, request, response,
        kind="gpu-instances destroy", record={"gpu": index, "ids": body.ids},
        change=change, says=says,
    )  # fmt: skip


@router.post(
    "/{gi}/compute-instances",
    status_code=202,
    summary="Create compute instances in a GPU instance (admin; a job)",
)
async def create_compute_instances(
    gpu: GpuPath,
    gi: GiPath,
    *,
    body: ComputeInstancesRequest,
    service: Svc,
    principal: Admin,
    request: Request,
    response: Response,
) -> JobOut:
    index = await _gpu_index(service, gpu)

    def change(node: LocalNode) -> ComputeInstancesOut:
        made = node.create_compute_instances(index, gi, body.profiles)
        return ComputeInstancesOut(compute_instances=[ComputeInstanceOut.of(ci) for ci in made])

    def says(out: ComputeInstancesOut) -> str:
        ids = _ids([ci.id for ci in out.compute_instances])
        return f"GPU {index}: created compute instance(s) {ids} in GPU instance {gi}"

    record = {"gpu": index, "gi": gi, **body.model_dump(mode="json")}
    return await _queued(
        service, principal, request, response,
        kind="compute-instances create", record=record, change=change, says=says,
    )  # fmt: skip


@router.post(
    "/{gi}/compute-instances/destroy",
    status_code=202,
    summary="Destroy compute instances of a GPU instance (admin; a job)",
)
async def destroy_compute_instances(
    gpu: GpuPath,
    gi: GiPath,
    *,
    body: InstanceIdsRequest,
    service: Svc,
    principal: Admin,
    request: Request,
    response: Response,
) -> JobOut:
    index = await _gpu_index(service, gpu)

    def change(node: LocalNode) -> DestroyedOut:
        return DestroyedOut(
            gpu=index, gi_id=gi, ids=node.destroy_compute_instances(index, gi, body.ids)
        )

    def says(out: DestroyedOut) -> str:
        return f"GPU {index}: destroyed compute instance(s) {_ids(out.ids)} of GI {gi}"

    return await _queued(
        service, principal, request, response,
        kind="compute-instances destroy", record={"gpu": index, "gi": gi, "ids": body.ids},
        change=change, says=says,
    )  # fmt: skip


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) or "none"
