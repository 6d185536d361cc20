"""The daemon's own REST bodies: health, who am I, status, jobs, tokens, audit rows, the
desired layout.

Why this module exists: what a GPU node is and does travels in ``migctl.schemas`` (the same
models the CLI prints and ``RemoteNode`` reads); what only a daemon has (authentication, jobs,
tokens, the audit log, the layout it re-applies at start) is described here, once. Request
bodies refuse unknown fields, like every ``migctl.schemas`` request. Only ``migctl.server``
imports this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field

from migctl.planner import DesiredLayout
from migctl.schemas.admin import TokenOut
from migctl.schemas.base import Wire, WireRequest
from migctl.schemas.layouts import GpuLayoutSpec
from migctl.server.audit import AuditEntry
from migctl.server.auth import Principal
from migctl.server.jobs import Job
from migctl.server.tokens import TokenInfo


class HealthOut(Wire):
    ok: bool
    version: str


class PrincipalOut(Wire):
    """Who the daemon thinks the caller is (``GET /v1/whoami``)."""

    name: str
    uid: int | None
    role: str
    via: str
    token_name: str | None

    @classmethod
    def of(cls, principal: Principal) -> PrincipalOut:
        return cls(
            name=principal.name,
            uid=principal.uid,
            role=str(principal.role),
            via=principal.via,
            token_name=principal.token_name,
        )


class StatusOut(Wire):
    version: str
    backend: str = Field(description="what the daemon drives: a simulated machine, or NVML")
    started_at: float
    uptime_s: float
    listeners: list[str]
    admin_group: str
    gpus: int
    mig_devices: int
    leases_active: int
    lease_waiters: int
    jobs_queued: int
    jobs_running: int
    desired_gpus: list[int]
    startup: list[str]
    repartition: dict[str, Any]  # mode, policy; when on: budget_left, reshapes, reservation
    you: PrincipalOut


class JobOut(Wire):
    """A job; ``result`` is the schema of what it did (e.g. ``ApplyResultOut``), also when it
    failed after starting; ``error`` a failure in migctl's error shape."""

    job_id: int
    kind: str
    status: str
    requested_by: str
    request: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    message: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job.to_dict())


class TokenCreateRequest(WireRequest):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["user", "admin"]
    user: str | None = Field(
        None, min_length=1, max_length=64, description="lease owner (default: the token's name)"
    )


def token_out(info: TokenInfo) -> TokenOut:
    """A token as the API shows it (``migctl.schemas.admin.TokenOut``: never its secret)."""
    return TokenOut.model_validate(info.to_dict())


class AuditOut(Wire):
    audit_id: int
    at: float
    actor: str
    role: str | None
    via: str
    method: str
    path: str
    action: str
    target: str | None
    status: int
    result: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls.model_validate(dataclasses.asdict(entry))


class DesiredGpuOut(Wire):
    gpu_index: int
    layout: GpuLayoutSpec
    updated_at: float
    updated_by: str
    job_id: int | None

    @classmethod
    def of(
        cls, gpu: int, layout: DesiredLayout, *, at: float, by: str, job_id: int | None
    ) -> DesiredGpuOut:
        spec = GpuLayoutSpec.of(layout)
        return cls(gpu_index=gpu, layout=spec, updated_at=at, updated_by=by, job_id=job_id)


class DesiredLayoutOut(Wire):
    """``GET /v1/layout``: the layout the daemon re-applies at start, per GPU."""

    gpus: list[DesiredGpuOut]
