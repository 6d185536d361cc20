"""What the reading verbs and the instance and lease verbs print with ``--output json``.

Why this module exists: ``migctl list``, ``status``, ``mode``, ``profiles``, ``gi``/``ci``,
``lease`` and ``env`` print values that crossed from a node (this host's or a daemon's): each
document here is built from those values and the models of ``schemas.machine``,
``schemas.reports`` and ``schemas.leases`` (a MIG device, a lease, a GPU instance has one shape
everywhere, the REST API's). A lease read through a daemon that withheld its owner (the
value's user is ``another user``, its uid -1) is printed with ``redacted: true`` and null owner
fields, as the daemon sent it. Only the CLI imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from migctl.leases.types import Lease
from migctl.model import GpuInfo, GpuProfiles, MigDevice, ProcessView
from migctl.reports import Inventory
from migctl.schemas.base import Wire
from migctl.schemas.leases import REDACTED_USER, LeaseOut
from migctl.schemas.machine import (
    DestroyedOut,
    GpuFields,
    GpuInfoOut,
    GpuOut,
    InventoryOut,
    MigDeviceOut,
    ProcessOut,
)
from migctl.schemas.reports import CiProfileStatusOut, GpuProfilesOut, ModeChangeOut
from migctl.schemas.soft import SoftDeviceOut


def lease_out(lease: Lease, me: str | None = None) -> LeaseOut:
    """A lease as read (withheld owner fields stay withheld); ``mine`` when ``me`` holds it."""
    visible = not (lease.uid < 0 and lease.user == REDACTED_USER)
    return LeaseOut.of(lease, visible=visible, mine=visible and lease.user == me)


class ListedDeviceOut(MigDeviceOut):
    """A MIG device as ``migctl list`` shows it: with its processes."""

    processes: list[ProcessOut]


class ListedGpuOut(GpuFields):
    """A GPU as ``migctl list`` shows it: its MIG devices, flat (like ``nvidia-smi -L``)."""

    mig_devices: list[ListedDeviceOut]


class GpuListOut(Wire):
    """``migctl list``: every chosen GPU and its MIG devices with processes and lease."""

    description: str = Field(description="what was read: a simulated machine, NVML, a daemon")
    gpus: list[ListedGpuOut]
    soft_devices: list[SoftDeviceOut] = Field(
        default_factory=list, description="MPS shares of GPUs and MIG devices (isolation soft)"
    )

    @classmethod
    def of(cls, inventory: Inventory, me: str | None = None) -> GpuListOut:
        holders = {uuid: lease_out(lease, me) for uuid, lease in inventory.holders.items()}
        return cls(
            description=inventory.description,
            soft_devices=soft_devices_out(inventory, holders),
            gpus=[
                ListedGpuOut.model_validate(
                    {
                        **GpuFields.fields_of(view.info),
                        "mig_devices": [
                            _device(d, view.processes, holders.get(d.uuid)) for d in view.devices
                        ],
                    }
                )
                for view in inventory.gpus
            ],
        )


def _device(
    device: MigDevice, processes: Sequence[ProcessView], lease: LeaseOut | None
) -> ListedDeviceOut:
    pids = {p.pid for p in device.processes}
    return ListedDeviceOut.model_validate(
        {
            **MigDeviceOut.of(device, lease).model_dump(),
            "processes": [ProcessOut.of(p) for p in processes if p.pid in pids],
        }
    )


def inventory_out(inventory: Inventory, me: str | None = None) -> InventoryOut:
    """``migctl status``: the inventory as read (a daemon's redactions kept)."""
    leases = [lease_out(lease, me) for lease in inventory.leases]
    by_uuid = {lease.uuid: lease for lease in leases if lease.active}
    return InventoryOut(
        description=inventory.description,
        gpus=[GpuOut.of_view(view, by_uuid, process_visible=True) for view in inventory.gpus],
        leases=leases,
        soft_devices=soft_devices_out(inventory, by_uuid),
    )


def soft_devices_out(inventory: Inventory, leases: Mapping[str, LeaseOut]) -> list[SoftDeviceOut]:
    """The inventory's soft devices, each with its lease as read (``leases`` by device UUID)."""
    return [SoftDeviceOut.of(view, leases.get(view.uuid)) for view in inventory.soft]


class MigModesOut(Wire):
    """``migctl mode show``: each GPU with its current and pending MIG mode."""

    gpus: list[GpuInfoOut]

    @classmethod
    def of(cls, infos: Sequence[GpuInfo]) -> MigModesOut:
        return cls(gpus=[GpuInfoOut.of(info) for info in infos])


class SkippedGpuOut(Wire):
    gpu_index: int
    name: str
    reason: str


class ModeReportOut(Wire):
    """``migctl mode enable|disable``: the changes, and the GPUs ``all`` passed over."""

    changes: list[ModeChangeOut]
    skipped: list[SkippedGpuOut]


class GpuProfileListOut(GpuProfilesOut):
    """One GPU's profiles (``migctl profiles``) and how its live geometry differs from the
    catalog's entry for it."""

    catalog_differences: list[str]

    @classmethod
    def with_differences(cls, found: GpuProfiles, differences: list[str]) -> GpuProfileListOut:
        return cls.model_validate(
            {**GpuProfilesOut.of(found).model_dump(), "catalog_differences": differences}
        )


class ProfilesOut(Wire):
    """``migctl profiles``: the GI profiles of every chosen MIG GPU, free and total."""

    gpus: list[GpuProfileListOut]


class CiProfilesOut(Wire):
    """``migctl profiles --ci GI``: the compute instance profiles of one GPU instance."""

    gpu_index: int
    gi_id: int
    profiles: list[CiProfileStatusOut]

    @classmethod
    def of(cls, found: GpuProfiles, gi_id: int) -> CiProfilesOut:
        return cls(
            gpu_index=found.gpu_index,
            gi_id=gi_id,
            profiles=[
                CiProfileStatusOut(gi_id=gi_id, profile=s.profile, free=s.free, total=s.total)
                for s in found.ci_profiles.get(gi_id, [])
            ],
        )


class LeaseGrantOut(Wire):
    """``migctl lease acquire`` and ``env``: the lease and the variables that use it."""

    lease: LeaseOut
    environment: dict[str, str]

    @classmethod
    def of(cls, lease: Lease, environment: Mapping[str, str], me: str | None) -> LeaseGrantOut:
        return cls(lease=lease_out(lease, me), environment=dict(environment))


class SingleLeaseOut(Wire):
    """``migctl lease release|renew``: the lease as it is now."""

    lease: LeaseOut


class DestroyedListOut(Wire):
    """``migctl gi destroy``: per GPU, the GPU instances destroyed."""

    destroyed: list[DestroyedOut]
