"""Response bodies of the REST API, and how migctl's values become them.

Why this module exists: responses are a contract (the CLI in front of the daemon, the dashboard
and scripts read them) and they are where privacy is enforced: a user sees the owner, job and
process of their own leases only; other users' leases show as leased, without owner details.
Processes of other users show without user name and command line. Admins see everything.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from migctl.inventory import GpuView, InstanceView, ProcessView
from migctl.leases import Lease
from migctl.model import MigDevice, Placement
from migctl.server.auth import Principal


class ErrorOut(BaseModel):
    """Every error: the same shape as ``migctl ... --output json`` prints."""

    error: str
    message: str
    hint: str | None
    exit_code: int
    context: dict[str, Any]


class PrincipalOut(BaseModel):
    name: str
    uid: int | None
    role: str
    via: str
    token_name: str | None


class PlacementOut(BaseModel):
    start: int
    size: int


class LeaseOut(BaseModel):
    """A lease; ``user``, ``uid``, ``host``, ``job`` and ``pid`` are null when redacted."""

    lease_id: int
    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
    sm_count: int | None
    active: bool
    created_at: float
    ttl_seconds: float | None
    heartbeat_at: float
    expires_at: float | None
    ended_at: float | None
    end_reason: str | None
    ended_by: str | None
    mine: bool
    redacted: bool
    user: str | None
    uid: int | None
    host: str | None
    job: str | None
    pid: int | None
    kind: str = "mig"  # soft: an MPS share (soft device) of parent_uuid
    share_percent: int | None = None
    memory_limit_mib: int | None = None
    parent_uuid: str | None = None
    pipe_dir: str | None = None
    isolation: str = "mig"
    notes: list[str] = Field(default_factory=list)


class ProcessOut(BaseModel):
    pid: int
    used_memory_mib: int | None
    gi_id: int | None
    ci_id: int | None
    user: str | None
    command: str | None


class ComputeInstanceOut(BaseModel):
    id: int
    profile: str
    profile_id: int
    placement: PlacementOut


class MigDeviceOut(BaseModel):
    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    gi_profile: str
    ci_profile: str
    placement: PlacementOut
    memory_total_mib: int
    memory_used_mib: int
    pids: list[int]
    lease: LeaseOut | None


class GpuInstanceOut(BaseModel):
    id: int
    profile: str
    profile_id: int
    placement: PlacementOut
    memory_mib: int | None
    compute_instances: list[ComputeInstanceOut]
    mig_devices: list[MigDeviceOut]


class MigModeOut(BaseModel):
    current: bool
    pending: bool


class GpuOut(BaseModel):
    index: int
    name: str
    uuid: str
    pci_bus_id: str
    pci_device_id: str | None = Field(
        default=None, description="the 16-bit PCI device id NVML reports, e.g. 0x2330"
    )
    memory_total_mib: int
    memory_used_mib: int
    mig: MigModeOut | None
    catalog_model: str | None
    memory_slices: int | None
    gpu_instances: list[GpuInstanceOut]
    processes: list[ProcessOut]


class InventoryOut(BaseModel):
    gpus: list[GpuOut]
    leases: list[LeaseOut]


def principal_out(principal: Principal) -> PrincipalOut:
    return PrincipalOut(
        name=principal.name,
        uid=principal.uid,
        role=str(principal.role),
        via=principal.via,
        token_name=principal.token_name,
    )


def placement_out(placement: Placement) -> PlacementOut:
    return PlacementOut(start=placement.start, size=placement.size)


def may_see_owner(lease: Lease, viewer: Principal) -> bool:
    return viewer.is_admin or lease.user == viewer.name


def lease_out(lease: Lease, viewer: Principal) -> LeaseOut:
    """The lease as ``viewer`` may see it (see the module docstring)."""
    visible = may_see_owner(lease, viewer)
    return LeaseOut(
        lease_id=lease.lease_id,
        uuid=lease.uuid,
        gpu_index=lease.gpu_index,
        gi_id=lease.gi_id,
        ci_id=lease.ci_id,
        profile=lease.profile,
        memory_mib=lease.memory_mib,
        sm_count=lease.sm_count,
        active=lease.active,
        created_at=lease.created_at,
        ttl_seconds=lease.ttl_seconds,
        heartbeat_at=lease.heartbeat_at,
        expires_at=lease.expires_at,
        ended_at=lease.ended_at,
        end_reason=None if lease.end_reason is None else lease.end_reason.value,
        ended_by=lease.ended_by if visible else None,
        mine=lease.user == viewer.name,
        redacted=not visible,
        user=lease.user if visible else None,
        uid=lease.uid if visible else None,
        host=lease.host if visible else None,
        job=lease.job if visible else None,
        pid=lease.pid if visible else None,
        kind=lease.kind.value,
        share_percent=lease.share_percent,
        memory_limit_mib=lease.memory_limit_mib,
        parent_uuid=lease.parent_uuid,
        pipe_dir=lease.pipe_dir,
        isolation="soft" if lease.soft else "mig",
        notes=list(lease.notes),
    )


def process_out(process: ProcessView, viewer: Principal) -> ProcessOut:
    visible = viewer.is_admin or (process.user is not None and process.user == viewer.name)
    return ProcessOut(
        pid=process.pid,
        used_memory_mib=process.used_memory_mib,
        gi_id=process.gi_id,
        ci_id=process.ci_id,
        user=process.user if visible else None,
        command=process.command if visible else None,
    )


def mig_device_out(device: MigDevice, lease: LeaseOut | None) -> MigDeviceOut:
    return MigDeviceOut(
        uuid=device.uuid,
        gpu_index=device.gpu_index,
        gi_id=device.gi_id,
        ci_id=device.ci_id,
        gi_profile=device.gi_profile,
        ci_profile=device.ci_profile,
        placement=placement_out(device.placement),
        memory_total_mib=device.memory_total_mib,
        memory_used_mib=device.memory_used_mib,
        pids=[p.pid for p in device.processes],
        lease=lease,
    )


def _instance_out(instance: InstanceView, leases: dict[str, LeaseOut]) -> GpuInstanceOut:
    gi = instance.gi
    return GpuInstanceOut(
        id=gi.id,
        profile=gi.profile_name,
        profile_id=gi.profile_id,
        placement=placement_out(gi.placement),
        memory_mib=gi.memory_mib,
        compute_instances=[
            ComputeInstanceOut(
                id=ci.id,
                profile=ci.profile_name,
                profile_id=ci.profile_id,
                placement=placement_out(ci.placement),
            )
            for ci in instance.cis
        ],
        mig_devices=[mig_device_out(d, leases.get(d.uuid)) for d in instance.devices],
    )


def gpu_out(view: GpuView, leases: dict[str, LeaseOut], viewer: Principal) -> GpuOut:
    info = view.info
    return GpuOut(
        index=info.index,
        name=info.name,
        uuid=info.uuid,
        pci_bus_id=info.pci_bus_id,
        pci_device_id=f"0x{info.pci_device_id:04X}" if info.pci_device_id else None,
        memory_total_mib=info.memory_total_mib,
        memory_used_mib=info.memory_used_mib,
        mig=None
        if info.mig is None
        else MigModeOut(current=info.mig.current, pending=info.mig.pending),
        catalog_model=view.model.key if view.model else None,
        memory_slices=view.memory_slices,
        gpu_instances=[_instance_out(i, leases) for i in view.instances],
        processes=[process_out(p, viewer) for p in view.processes],
    )


def inventory_out(views: list[GpuView], leases: list[Lease], viewer: Principal) -> InventoryOut:
    shown = [lease_out(lease, viewer) for lease in leases]
    by_uuid = {lease.uuid: lease for lease in shown if lease.active}
    return InventoryOut(gpus=[gpu_out(v, by_uuid, viewer) for v in views], leases=shown)
