"""More response bodies: catalog, plans and layouts, jobs, tokens, audit rows, status.

Why this module exists: the companion of ``views`` for everything that is not inventory or
leases (kept apart so each stays small). Only ``migctl.server`` imports it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from migctl.catalog.codec import ci_to_dict, gi_to_dict, model_to_dict
from migctl.inventory import GpuProfiles
from migctl.model import GpuModel
from migctl.server.requests import GpuLayoutSpec
from migctl.server.views import PlacementOut, PrincipalOut, placement_out


class HealthOut(BaseModel):
    ok: bool
    version: str


class ModelSummaryOut(BaseModel):
    key: str
    name: str
    mig: bool
    max_gpu_instances: int | None
    memory_slices: int | None
    trust: str
    placements_verified: bool
    pci_device_ids: list[str]
    aliases: list[str]


class GiProfileOut(BaseModel):
    name: str
    id: int | None
    nvml_index: int
    compute_slices: int
    memory_slices: int
    memory_mib: int | None
    sm_count: int | None
    max_instances: int
    placements: list[PlacementOut]
    placements_verified: bool


class CiProfileOut(BaseModel):
    gi_profile: str
    name: str
    id: int
    compute_slices: int
    sm_count: int | None
    max_instances: int
    default: bool
    derived: bool


class ModelOut(ModelSummaryOut):
    nvidia_smi_name: str
    architecture: str | None
    total_memory_mib: int | None
    sm_count: int | None
    driver_min: str | None
    confidence: str
    gi_profiles: list[GiProfileOut]
    ci_profiles: list[CiProfileOut]
    notes: list[str]
    sources: list[str]


class PlanOut(BaseModel):
    reasons: list[str]
    plans: list[dict[str, Any]]
    disturbs: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per GPU index, each MIG device the plans destroy and who uses it",
    )


class DesiredGpuOut(BaseModel):
    gpu_index: int
    layout: GpuLayoutSpec
    updated_at: float
    updated_by: str
    job_id: int | None


class DesiredLayoutOut(BaseModel):
    gpus: list[DesiredGpuOut]


class JobOut(BaseModel):
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


class TokenOut(BaseModel):
    token_id: str
    name: str
    role: str
    owner: str
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None
    revoked_by: str | None
    active: bool


class TokenCreatedOut(BaseModel):
    token: str
    info: TokenOut


class AuditOut(BaseModel):
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


class StatusOut(BaseModel):
    version: str
    backend: str
    driver_version: str
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


def model_summary_out(model: GpuModel) -> ModelSummaryOut:
    return ModelSummaryOut(**_summary(model))


def _summary(model: GpuModel) -> dict[str, Any]:
    return {
        "key": model.key,
        "name": model.name,
        "mig": model.mig_capable,
        "max_gpu_instances": model.max_gpu_instances,
        "memory_slices": model.memory_slices,
        "trust": model.trust.value,
        "placements_verified": model.placements_verified,
        "pci_device_ids": [f"0x{p:04X}" for p in model.pci_device_ids],
        "aliases": list(model.aliases),
    }


def model_out(model: GpuModel) -> ModelOut:
    return ModelOut(
        **_summary(model),
        nvidia_smi_name=model.nvidia_smi_name,
        architecture=model.architecture,
        total_memory_mib=model.total_memory_mib,
        sm_count=model.sm_count,
        driver_min=model.driver_min,
        confidence=model.confidence,
        gi_profiles=[
            GiProfileOut(
                name=p.name,
                id=p.id,
                nvml_index=p.nvml_index,
                compute_slices=p.compute_slices,
                memory_slices=p.memory_slices,
                memory_mib=p.memory_mib,
                sm_count=p.sm_count,
                max_instances=p.max_instances,
                placements=[placement_out(x) for x in p.placements],
                placements_verified=p.placements_verified,
            )
            for p in model.gi_profiles
        ],
        ci_profiles=[
            CiProfileOut(
                gi_profile=c.gi_profile,
                name=c.name,
                id=c.nvml_index,
                compute_slices=c.compute_slices,
                sm_count=c.sm_count,
                max_instances=c.max_instances,
                default=c.is_default,
                derived=c.derived,
            )
            for c in model.ci_profiles
        ],
        notes=list(model.notes),
        sources=list(model.sources),
    )


class ProfileCountOut(BaseModel):
    """One profile's free and total instance counts, and the profile in the catalog's form."""

    profile: dict[str, Any] = Field(
        description="the profile as the driver reports it, in the catalog's JSON form"
    )
    free: int
    total: int


class GiCiProfilesOut(BaseModel):
    gi_id: int
    profiles: list[ProfileCountOut]


class GpuProfilesOut(BaseModel):
    """What ``nvidia-smi mig -lgip`` and ``-lcip`` tell about one GPU, read live."""

    gpu_index: int
    model: dict[str, Any] = Field(
        description="the GPU's MIG geometry read live from the driver, in the catalog's JSON form"
    )
    gi_profiles: list[ProfileCountOut]
    ci_profiles: list[GiCiProfilesOut] = Field(
        description="per existing GPU instance, its compute instance profiles"
    )


def gpu_profiles_out(found: GpuProfiles) -> GpuProfilesOut:
    return GpuProfilesOut(
        gpu_index=found.gpu_index,
        model=model_to_dict(found.model),
        gi_profiles=[
            ProfileCountOut(profile=gi_to_dict(s.profile), free=s.free, total=s.total)
            for s in found.gi_profiles
        ],
        ci_profiles=[
            GiCiProfilesOut(
                gi_id=gi_id,
                profiles=[
                    ProfileCountOut(profile=ci_to_dict(s.profile), free=s.free, total=s.total)
                    for s in statuses
                ],
            )
            for gi_id, statuses in sorted(found.ci_profiles.items())
        ],
    )
