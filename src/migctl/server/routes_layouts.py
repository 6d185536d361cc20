"""Layout routes: plan, check and export (anyone), apply, recover and MIG mode (admins, as jobs),
jobs (admins).

Why this module exists: changing the GPUs is the daemon's most dangerous power. Each route
calls the daemon's ``LocalNode`` with the target ``RemoteNode`` sent (resolved there, by the one
resolver of ``node.targets``); a change is checked completely before a job is queued (unknown
GPUs or profiles, impossible layouts, a refused mode change: 4xx, nothing changed) and runs as a
job (202 + ``Location: /v1/jobs/{id}``) whose result is the schema of the node's answer, so a
client never has to hold a connection open through a long apply. Only ``server.app`` imports it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from migctl.schemas.changes import ModeRequest, RecoverRequest
from migctl.schemas.layouts import ApplyRequest, PlanRequest
from migctl.schemas.reports import CheckReportOut, PlanReportOut
from migctl.server import audit
from migctl.server.audit_detail import request_digest
from migctl.server.bodies import JobOut
from migctl.server.changes import submit_apply, submit_mode, submit_recover
from migctl.server.deps import Admin, Caller, GpusQuery, Svc
from migctl.server.jobs import Job, JobStatus

router = APIRouter(prefix="/v1")


def accepted(job: Job, response: Response) -> JobOut:
    """202: the job, and where to follow it."""
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    return JobOut.of(job)


@router.post("/plan", tags=["layouts"], summary="The plans that would reach a target (no change)")
async def plan(
    body: PlanRequest, service: Svc, principal: Caller, request: Request
) -> PlanReportOut:
    audit.note(request, "plan", None, request=request_digest(await request.body(), body))
    report = await service.blocking.run(service.plan, body.target, body.gpus, force=body.force)
    return PlanReportOut.of(report)


@router.post("/check", tags=["layouts"], summary="Whether the GPUs match a target (no change)")
async def check(
    body: PlanRequest, service: Svc, principal: Caller, request: Request
) -> CheckReportOut:
    audit.note(request, "check", None, request=request_digest(await request.body(), body))
    return CheckReportOut.of(await service.blocking.run(service.check, body.target, body.gpus))


@router.get(
    "/export",
    tags=["layouts"],
    summary="The current layout as a layout file (native or mig-parted YAML)",
    response_class=PlainTextResponse,
)
async def export(
    service: Svc,
    principal: Caller,
    gpus: GpusQuery = None,
    format: Annotated[str, Query(max_length=16)] = "native",
    name: Annotated[str, Query(min_length=1, max_length=128)] = "exported",
) -> PlainTextResponse:
    text = await service.on_gpus(service.node.export, gpus=gpus, format=format, name=name)
    return PlainTextResponse(text, media_type="application/yaml")


@router.post(
    "/apply",
    status_code=202,
    tags=["layouts"],
    summary="Make the GPUs match a target (admin; runs as a job)",
)
async def apply_layout(
    body: ApplyRequest, service: Svc, principal: Admin, request: Request, response: Response
) -> JobOut:
    audit.note(request, "apply", None, request=request_digest(await request.body(), body))
    job, gpus = await service.blocking.run(submit_apply, service, body, principal)
    audit.note(request, "apply", f"job {job.job_id}", gpus=gpus)
    return accepted(job, response)


@router.post(
    "/recover",
    status_code=202,
    tags=["layouts"],
    summary="Finish (or roll back) an apply a crash interrupted (admin; runs as a job)",
)
async def recover(
    body: RecoverRequest, service: Svc, principal: Admin, request: Request, response: Response
) -> JobOut:
    audit.note(request, "recover", None, rollback=body.rollback)
    job = await service.blocking.run(submit_recover, service, body, principal)
    audit.add_detail(request, job_id=job.job_id)
    return accepted(job, response)


@router.post(
    "/mig-mode",
    status_code=202,
    tags=["layouts"],
    summary="Enable or disable MIG mode on the chosen GPUs (admin; runs as a job)",
)
async def mig_mode(
    body: ModeRequest, service: Svc, principal: Admin, request: Request, response: Response
) -> JobOut:
    audit.note(request, "mig-mode", body.gpus or "all", enabled=body.enabled, force=body.force)
    job, gpus = await service.blocking.run(submit_mode, service, body, principal)
    audit.add_detail(request, job_id=job.job_id, gpus=gpus)
    return accepted(job, response)


@router.get("/jobs", tags=["jobs"], summary="Recent jobs, newest first (admin)")
async def jobs(
    service: Svc,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    status: JobStatus | None = None,
) -> list[JobOut]:
    found = await service.blocking.run(service.jobs.store.recent, limit=limit, status=status)
    return [JobOut.of(job) for job in found]


@router.get("/jobs/{job_id}", tags=["jobs"], summary="One job's status and result (admin)")
async def job(job_id: int, service: Svc, principal: Admin) -> JobOut:
    return JobOut.of(await service.blocking.run(service.jobs.store.get, job_id))
