"""The daemon's JSON turned back into migctl's values, so remote verbs reuse the local renderers.

Why this exists: ``migctl list``, ``status``, ``top`` and ``lease list`` must look the
same whether they read the GPUs directly or through the daemon. The daemon answers in the REST
API's shapes (``docs/openapi.json``); this module rebuilds the ``GpuView``s and ``Lease``s the
local code renders (plans: ``remote_layouts``). What the API does not carry is filled in visibly:

* a lease of another user (``redacted``) gets the user name ``another user`` and no job or PID;
* a GPU's PCI device id, where the daemon does not send it (older daemons): 0 here and null
  in JSON;
* processes keep the user and command the daemon shows (none for other users' processes).

Only the CLI's remote verbs import this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migctl.inventory import GpuView, InstanceView, ProcessView
from migctl.leases import EndReason, Lease
from migctl.model import (
    ComputeInstance,
    GpuInfo,
    GpuInstance,
    GpuProcess,
    MigDevice,
    MigMode,
    Placement,
)

if TYPE_CHECKING:
    from migctl.catalog import Catalog
    from migctl.server.client import ServiceClient

REDACTED_USER = "another user"
Json = dict[str, Any]


def lease_from_out(out: Json) -> Lease:
    """A ``LeaseOut`` body as a Lease (another user's lease: user ``another user``)."""
    reason = out.get("end_reason")
    return Lease(
        lease_id=int(out["lease_id"]),
        uuid=out["uuid"],
        gpu_index=int(out["gpu_index"]),
        gi_id=int(out["gi_id"]),
        ci_id=int(out["ci_id"]),
        profile=out["profile"],
        memory_mib=int(out["memory_mib"]),
        sm_count=out.get("sm_count"),
        user=out.get("user") or REDACTED_USER,
        uid=-1 if out.get("uid") is None else int(out["uid"]),
        host=out.get("host") or "",
        job=out.get("job"),
        pid=out.get("pid"),
        created_at=float(out["created_at"]),
        ttl_seconds=out.get("ttl_seconds"),
        heartbeat_at=float(out["heartbeat_at"]),
        expires_at=out.get("expires_at"),
        ended_at=out.get("ended_at"),
        end_reason=None if reason is None else EndReason(reason),
        ended_by=out.get("ended_by"),
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One ``GET /v1/inventory``: the GPUs as views, and the active leases by device uuid."""

    views: list[GpuView]
    holders: dict[str, Lease]
    redacted_ids: frozenset[int]
    backend: str

    def select(self, indices: Iterable[int]) -> list[GpuView]:
        wanted = set(indices)
        return [view for view in self.views if view.info.index in wanted]


def read_snapshot(client: ServiceClient, catalog: Catalog) -> Snapshot:
    inventory = client.request("GET", "/v1/inventory")
    leases = [lease_from_out(out) for out in inventory["leases"] if out["active"]]
    redacted = frozenset(int(out["lease_id"]) for out in inventory["leases"] if out["redacted"])
    views = [gpu_view_from_out(gpu, catalog) for gpu in inventory["gpus"]]
    return Snapshot(
        views=sorted(views, key=lambda v: v.info.index),
        holders={lease.uuid: lease for lease in leases},
        redacted_ids=redacted,
        backend=f"the migctl daemon at {client.where}",
    )


def _placement(out: Json) -> Placement:
    return Placement(int(out["start"]), int(out["size"]))


def gpu_view_from_out(gpu: Json, catalog: Catalog) -> GpuView:
    mig = gpu.get("mig")
    info = GpuInfo(
        index=int(gpu["index"]),
        name=gpu["name"],
        uuid=gpu["uuid"],
        pci_bus_id=gpu["pci_bus_id"],
        pci_device_id=int(gpu.get("pci_device_id") or "0", 16),  # 0: not sent (null in JSON)
        memory_total_mib=int(gpu["memory_total_mib"]),
        memory_used_mib=int(gpu["memory_used_mib"]),
        mig=None if mig is None else MigMode(bool(mig["current"]), bool(mig["pending"])),
    )
    key = gpu.get("catalog_model")
    model = catalog.find(key) if key else None
    processes = tuple(
        ProcessView(p["pid"], p["used_memory_mib"], p["gi_id"], p["ci_id"], p["user"], p["command"])
        for p in gpu["processes"]
    )
    instances = tuple(_instance(info.index, gi, processes) for gi in gpu["gpu_instances"])
    return GpuView(info, model, gpu.get("memory_slices"), instances, processes)


def _instance(gpu_index: int, gi: Json, processes: tuple[ProcessView, ...]) -> InstanceView:
    instance = GpuInstance(
        gpu_index=gpu_index,
        id=int(gi["id"]),
        profile_id=int(gi["profile_id"]),
        profile_name=gi["profile"],
        placement=_placement(gi["placement"]),
        memory_mib=gi.get("memory_mib"),
    )
    cis = tuple(
        ComputeInstance(
            gpu_index,
            instance.id,
            int(ci["id"]),
            int(ci["profile_id"]),
            ci["profile"],
            _placement(ci["placement"]),
        )
        for ci in gi["compute_instances"]
    )
    devices = tuple(_device(d, processes) for d in gi["mig_devices"])
    return InstanceView(instance, cis, devices)


def _device(device: Json, processes: tuple[ProcessView, ...]) -> MigDevice:
    pids = set(device["pids"])
    return MigDevice(
        uuid=device["uuid"],
        gpu_index=int(device["gpu_index"]),
        gi_id=int(device["gi_id"]),
        ci_id=int(device["ci_id"]),
        gi_profile=device["gi_profile"],
        ci_profile=device["ci_profile"],
        placement=_placement(device["placement"]),
        memory_total_mib=int(device["memory_total_mib"]),
        memory_used_mib=int(device["memory_used_mib"]),
        processes=tuple(
            GpuProcess(p.pid, p.used_memory_mib, p.gi_id, p.ci_id)
            for p in processes
            if p.pid in pids
        ),
    )


UNKNOWN_PCI = "0x0000"


def pci_or_none(text: str | None) -> str | None:
    """A serialized PCI device id, or None where the daemon did not say (serialized as 0)."""
    return None if text in (None, UNKNOWN_PCI) else text


def json_like_local(gpu: Json, redacted_ids: frozenset[int]) -> Json:
    """A serialized GPU made honest about what the daemon did not say (see the docstring)."""
    gpu = {**gpu, "pci_device_id": pci_or_none(gpu.get("pci_device_id"))}
    for device in _devices_in(gpu):
        holder = device.get("lease")
        if holder is not None and holder["lease_id"] in redacted_ids:
            device["lease"] = {
                **holder,
                "user": None,
                "job": None,
                "pid": None,
                "host": None,
                "redacted": True,
            }
    return gpu


def _devices_in(gpu: Json) -> list[Json]:
    if "mig_devices" in gpu:  # migctl list
        return list(gpu["mig_devices"])
    return [d for gi in gpu.get("gpu_instances", []) for d in gi["mig_devices"]]
