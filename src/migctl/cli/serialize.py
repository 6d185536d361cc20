"""Plain-dict forms of migctl's value types for ``--output json`` (stable field names).

Why this exists: JSON output is a contract for scripts; one module owns its shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migctl.model import (
    CiProfile,
    ComputeInstance,
    GiProfile,
    GpuInfo,
    GpuInstance,
    GpuModel,
    MigDevice,
    Placement,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from migctl.backends.base import ModeChange
    from migctl.inventory import GpuView, InstanceView, ProcessView
    from migctl.leases import Lease

    Holders = Mapping[str, Lease]


def placement(p: Placement) -> dict[str, int]:
    return {"start": p.start, "size": p.size}


def gpu_info(info: GpuInfo) -> dict[str, Any]:
    return {
        "index": info.index,
        "name": info.name,
        "uuid": info.uuid,
        "pci_bus_id": info.pci_bus_id,
        "pci_device_id": f"0x{info.pci_device_id:04X}",
        "memory_total_mib": info.memory_total_mib,
        "memory_used_mib": info.memory_used_mib,
        "mig": None
        if info.mig is None
        else {"current": info.mig.current, "pending": info.mig.pending},
    }


def gpu_instance(gi: GpuInstance) -> dict[str, Any]:
    return {
        "gpu": gi.gpu_index,
        "id": gi.id,
        "profile": gi.profile_name,
        "profile_id": gi.profile_id,
        "placement": placement(gi.placement),
        "memory_mib": gi.memory_mib,
    }


def compute_instance(ci: ComputeInstance) -> dict[str, Any]:
    return {
        "gpu": ci.gpu_index,
        "gi_id": ci.gi_id,
        "id": ci.id,
        "profile": ci.profile_name,
        "profile_id": ci.profile_id,
        "placement": placement(ci.placement),
    }


def process(p: ProcessView) -> dict[str, Any]:
    return {
        "pid": p.pid,
        "user": p.user,
        "command": p.command,
        "used_memory_mib": p.used_memory_mib,
        "gi_id": p.gi_id,
        "ci_id": p.ci_id,
    }


def lease_holder(lease: Lease | None) -> dict[str, Any] | None:
    """Who holds a MIG device's active lease (None: nobody)."""
    if lease is None:
        return None
    return {
        "lease_id": lease.lease_id,
        "user": lease.user,
        "job": lease.job,
        "pid": lease.pid,
        "host": lease.host,
        "created_at": lease.created_at,
        "expires_at": lease.expires_at,
    }


def mig_device(d: MigDevice, holders: Holders | None = None) -> dict[str, Any]:
    """A MIG device; with ``holders`` (status, list) also its ``lease`` holder or null."""
    extra = {} if holders is None else {"lease": lease_holder(holders.get(d.uuid))}
    return {
        "uuid": d.uuid,
        "gpu": d.gpu_index,
        "gi_id": d.gi_id,
        "ci_id": d.ci_id,
        "gi_profile": d.gi_profile,
        "ci_profile": d.ci_profile,
        "placement": placement(d.placement),
        "memory_total_mib": d.memory_total_mib,
        "memory_used_mib": d.memory_used_mib,
        "pids": [p.pid for p in d.processes],
        **extra,
    }


def instance_view(i: InstanceView, holders: Holders | None = None) -> dict[str, Any]:
    return {
        **gpu_instance(i.gi),
        "compute_instances": [compute_instance(c) for c in i.cis],
        "mig_devices": [mig_device(d, holders) for d in i.devices],
    }


def gpu_view(v: GpuView, holders: Holders | None = None) -> dict[str, Any]:
    return {
        **gpu_info(v.info),
        "catalog_model": v.model.key if v.model else None,
        "trust": v.model.trust.value if v.model else None,
        "memory_slices": v.memory_slices,
        "gpu_instances": [instance_view(i, holders) for i in v.instances],
        "processes": [process(p) for p in v.processes],
    }


def gi_profile(p: GiProfile) -> dict[str, Any]:
    e = p.engines
    return {
        "name": p.name,
        "id": p.id,
        "nvml_index": p.nvml_index,
        "compute_slices": p.compute_slices,
        "memory_slices": p.memory_slices,
        "memory_mib": p.memory_mib,
        "sm_count": p.sm_count,
        "engines": {"ce": e.ce, "dec": e.dec, "enc": e.enc, "jpeg": e.jpeg, "ofa": e.ofa},
        "max_instances": p.max_instances,
        "placements": [placement(x) for x in p.placements],
        "placements_verified": p.placements_verified,
    }


def ci_profile(c: CiProfile) -> dict[str, Any]:
    return {
        "gi_profile": c.gi_profile,
        "name": c.name,
        "id": c.nvml_index,
        "compute_slices": c.compute_slices,
        "sm_count": c.sm_count,
        "max_instances": c.max_instances,
        "placements": [placement(x) for x in c.placements],
        "default": c.is_default,
        "derived": c.derived,
    }


def model_summary(m: GpuModel) -> dict[str, Any]:
    return {
        "key": m.key,
        "name": m.name,
        "mig": m.mig_capable,
        "max_gpu_instances": m.max_gpu_instances,
        "memory_slices": m.memory_slices,
        "trust": m.trust.value,
        "placements_verified": m.placements_verified,
        "pci_device_ids": [f"0x{p:04X}" for p in m.pci_device_ids],
        "aliases": list(m.aliases),
    }


def mode_change(c: ModeChange) -> dict[str, Any]:
    return {
        "gpu": c.gpu_index,
        "requested": "enabled" if c.enabled else "disabled",
        "current": c.current,
        "pending": c.pending,
        "done": c.done,
        "reason": c.reason,
    }
