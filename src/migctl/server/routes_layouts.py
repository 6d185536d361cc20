"""Layout routes: plan (anyone), apply and MIG mode (admins, as jobs), jobs (admins).

Why this module exists: changing the GPUs is the daemon's most dangerous power. A request is
checked completely before a job is queued (unknown GPUs or profiles, impossible layouts: 4xx,
nothing changed); the change itself runs as a job (202 + ``Location: /v1/jobs/{id}``) so a
client never has to hold a connection open through a long apply. Only ``server.app`` imports it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from migctl.server import audit
from migctl.server.audit_detail import request_digest
from migctl.server.deps import Admin, Caller, Svc
from migctl.server.jobs import Job, JobStatus
from migctl.server.requests import LayoutRequest, MigModeRequest
from migctl.server.views_more import JobOut, PlanOut

router = APIRouter(prefix="/v1")


def job_out(job: Job) -> JobOut:
    return JobOut(**job.to_dict())


@router.post("/plan", tags=["layouts"], summary="The plan that would reach a layout (no change)")
async def plan(body: LayoutRequest, service: Svc, principal: Caller, request: Request) -> PlanOut:
    audit.note(request, "plan", None, request=request_digest(await request.body(), body))
    targets, reasons = await service.blocking.run(service.targets_for, body)
    plans, disturbs = await service.blocking.run(service.plan, targets, force=body.force)
    return PlanOut(
        reasons=list(reasons),
        plans=[p.to_dict() for _, p in sorted(plans.items())],
        disturbs={str(gpu): lines for gpu, lines in sorted(disturbs.items())},
    )


@router.post(
    "/apply",
    status_code=202,
    tags=["layouts"],
    summary="Make the GPUs match a layout (admin; runs as a job)",
)
async def apply_layout(
    body: LayoutRequest, service: Svc, principal: Admin, request: Request, response: Response
) -> JobOut:
    audit.note(request, "apply", None, request=request_digest(await request.body(), body))
    targets, reasons = await service.blocking.run(service.targets_for, body)
    job = await service.blocking.run(service.submit_apply, targets, force=body.force, by=principal)
    audit.note(request, "apply", f"job {job.job_id}", gpus=sorted(targets), reasons=list(reasons))
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    return job_out(job)


@router.put(
    "/gpus/{gpu}/mig-mode",
    status_code=202,
    tags=["layouts"],
    summary="Enable or disable MIG mode on one GPU (admin; runs as a job)",
)
async def mig_mode(
    gpu: int,
    *,
    body: MigModeRequest,
    service: Svc,
    principal: Admin,
    request: Request,
    response: Response,
) -> JobOut:
    audit.note(request, "mig-mode", f"gpu {gpu}", enabled=body.enabled, force=body.force)
    job = await service.blocking.run(
        service.submit_mig_mode, gpu, enabled=body.enabled, force=body.force, by=principal
    )
    audit.add_detail(request, job_id=job.job_id)
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    return job_out(job)


@router.get("/jobs", tags=["jobs"], summary="Recent jobs, newest first (admin)")
async def jobs(
    service: Svc,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    status: JobStatus | None = None,
) -> list[JobOut]:
    found = await service.blocking.run(service.jobs.store.recent, limit=limit, status=status)
    return [job_out(job) for job in found]


@router.get("/jobs/{job_id}", tags=["jobs"], summary="One job's status and result (admin)")
async def job(job_id: int, service: Svc, principal: Admin) -> JobOut:
    return job_out(await service.blocking.run(service.jobs.store.get, job_id))
