"""The machine on the wire: GPUs, GPU and compute instances, MIG devices, processes.

Why this module exists: ``migctl list/status -o json``, ``GET /v1/inventory`` and the client that
rebuilds :class:`~migctl.inventory.GpuView` values from it use these models and nothing else.
A process of another user is shown without user and command by the daemon (``visible=False``);
the shape does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from migctl.model import (
    ComputeInstance,
    GpuInfo,
    GpuInstance,
    GpuModel,
    GpuProcess,
    GpuView,
    InstanceView,
    MigDevice,
    MigMode,
    ProcessView,
)
from migctl.reports import SOFT_ISOLATION_NOTE, Inventory
from migctl.schemas.base import PlacementOut, Wire
from migctl.schemas.leases import LeaseOut
from migctl.schemas.soft import SoftDeviceOut

if TYPE_CHECKING:
    from migctl.catalog import Catalog


class MigModeOut(Wire):
    current: bool
    pending: bool


class GpuFields(Wire):
    """The fields of a physical GPU: what ``nvidia-smi -L`` and ``-q`` tell about it."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str
    pci_device_id: str = Field(description="the 16-bit PCI device id, e.g. 0x2330")
    memory_total_mib: int
    memory_used_mib: int
    mig: MigModeOut | None = Field(description="null: the GPU has no MIG")
    pci_subsystem_id: int | None = Field(
        None, description="NVML's 32 bits: subsystem device << 16 | vendor; null: unknown"
    )

    @staticmethod
    def fields_of(info: GpuInfo) -> dict[str, object]:
        mig = info.mig
        return {
            "index": info.index,
            "name": info.name,
            "uuid": info.uuid,
            "pci_bus_id": info.pci_bus_id,
            "pci_device_id": f"0x{info.pci_device_id:04X}",
            "memory_total_mib": info.memory_total_mib,
            "memory_used_mib": info.memory_used_mib,
            "mig": None if mig is None else MigModeOut(current=mig.current, pending=mig.pending),
            "pci_subsystem_id": info.pci_subsystem_id,
        }

    def info(self) -> GpuInfo:
        mig = None if self.mig is None else MigMode(self.mig.current, self.mig.pending)
        return GpuInfo(
            index=self.index,
            name=self.name,
            uuid=self.uuid,
            pci_bus_id=self.pci_bus_id,
            pci_device_id=int(self.pci_device_id, 16),
            memory_total_mib=self.memory_total_mib,
            memory_used_mib=self.memory_used_mib,
            mig=mig,
            pci_subsystem_id=self.pci_subsystem_id,
        )


class GpuInfoOut(GpuFields):
    """A physical GPU alone (``migctl mode show``)."""

    @classmethod
    def of(cls, info: GpuInfo) -> GpuInfoOut:
        return cls.model_validate(cls.fields_of(info))


class ProcessOut(Wire):
    """A GPU process; ``user`` and ``command`` are null when unknown or withheld."""

    pid: int
    used_memory_mib: int | None
    gi_id: int | None
    ci_id: int | None
    user: str | None
    command: str | None

    @classmethod
    def of(cls, process: ProcessView, *, visible: bool = True) -> ProcessOut:
        return cls(
            pid=process.pid,
            used_memory_mib=process.used_memory_mib,
            gi_id=process.gi_id,
            ci_id=process.ci_id,
            user=process.user if visible else None,
            command=process.command if visible else None,
        )

    def value(self) -> ProcessView:
        return ProcessView(
            self.pid, self.used_memory_mib, self.gi_id, self.ci_id, self.user, self.command
        )


class ComputeInstanceOut(Wire):
    gpu_index: int
    gi_id: int
    id: int
    profile: str
    profile_id: int
    placement: PlacementOut

    @classmethod
    def of(cls, ci: ComputeInstance) -> ComputeInstanceOut:
        return cls(
            gpu_index=ci.gpu_index,
            gi_id=ci.gi_id,
            id=ci.id,
            profile=ci.profile_name,
            profile_id=ci.profile_id,
            placement=PlacementOut.of(ci.placement),
        )

    def value(self) -> ComputeInstance:
        return ComputeInstance(
            self.gpu_index,
            self.gi_id,
            self.id,
            self.profile_id,
            self.profile,
            self.placement.value(),
        )


class MigDeviceOut(Wire):
    """A MIG device (a CI as CUDA sees it), its processes' PIDs and its active lease."""

    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    gi_profile: str
    ci_profile: str
    placement: PlacementOut = Field(description="the GI's placement in memory slices")
    memory_total_mib: int
    memory_used_mib: int
    pids: list[int]
    lease: LeaseOut | None = None

    @classmethod
    def of(cls, device: MigDevice, lease: LeaseOut | None = None) -> MigDeviceOut:
        return cls(
            uuid=device.uuid,
            gpu_index=device.gpu_index,
            gi_id=device.gi_id,
            ci_id=device.ci_id,
            gi_profile=device.gi_profile,
            ci_profile=device.ci_profile,
            placement=PlacementOut.of(device.placement),
            memory_total_mib=device.memory_total_mib,
            memory_used_mib=device.memory_used_mib,
            pids=[p.pid for p in device.processes],
            lease=lease,
        )

    def value(self, processes: Sequence[ProcessView] = ()) -> MigDevice:
        pids = set(self.pids)
        return MigDevice(
            uuid=self.uuid,
            gpu_index=self.gpu_index,
            gi_id=self.gi_id,
            ci_id=self.ci_id,
            gi_profile=self.gi_profile,
            ci_profile=self.ci_profile,
            placement=self.placement.value(),
            memory_total_mib=self.memory_total_mib,
            memory_used_mib=self.memory_used_mib,
            processes=tuple(
                GpuProcess(p.pid, p.used_memory_mib, p.gi_id, p.ci_id)
                for p in processes
                if p.pid in pids
            ),
        )


class GpuInstanceOut(Wire):
    """A GPU instance with its compute instances and the MIG devices they are."""

    gpu_index: int
    id: int
    profile: str
    profile_id: int
    placement: PlacementOut
    memory_mib: int | None
    compute_instances: list[ComputeInstanceOut]
    mig_devices: list[MigDeviceOut]

    @classmethod
    def of(cls, view: InstanceView, leases: Mapping[str, LeaseOut]) -> GpuInstanceOut:
        gi = view.gi
        return cls(
            gpu_index=gi.gpu_index,
            id=gi.id,
            profile=gi.profile_name,
            profile_id=gi.profile_id,
            placement=PlacementOut.of(gi.placement),
            memory_mib=gi.memory_mib,
            compute_instances=[ComputeInstanceOut.of(ci) for ci in view.cis],
            mig_devices=[MigDeviceOut.of(d, leases.get(d.uuid)) for d in view.devices],
        )

    def value(self, processes: Sequence[ProcessView] = ()) -> InstanceView:
        gi = GpuInstance(
            gpu_index=self.gpu_index,
            id=self.id,
            profile_id=self.profile_id,
            profile_name=self.profile,
            placement=self.placement.value(),
            memory_mib=self.memory_mib,
        )
        return InstanceView(
            gi,
            tuple(ci.value() for ci in self.compute_instances),
            tuple(d.value(processes) for d in self.mig_devices),
        )


class GpuOut(GpuFields):
    """One GPU with everything on it (``migctl status``, ``GET /v1/inventory``)."""

    catalog_model: str | None = Field(description="the catalog's key for this GPU, if known")
    trust: str | None = Field(description="how far the catalog entry is verified")
    memory_slices: int | None
    gpu_instances: list[GpuInstanceOut]
    processes: list[ProcessOut]

    @classmethod
    def of_view(
        cls,
        view: GpuView,
        leases: Mapping[str, LeaseOut] | None = None,
        *,
        process_visible: bool | None = None,
        viewer: str | None = None,
    ) -> GpuOut:
        """``view``; processes of users other than ``viewer`` are withheld unless visible."""
        leases = leases or {}
        return cls.model_validate(
            {
                **cls.fields_of(view.info),
                "catalog_model": None if view.model is None else view.model.key,
                "trust": None if view.model is None else view.model.trust.value,
                "memory_slices": view.memory_slices,
                "gpu_instances": [GpuInstanceOut.of(i, leases) for i in view.instances],
                "processes": [
                    ProcessOut.of(p, visible=_visible(p, process_visible, viewer))
                    for p in view.processes
                ],
            }
        )

    def view(self, catalog: Catalog | None = None) -> GpuView:
        """The GPU as a :class:`GpuView` (the catalog entry looked up by key when given)."""
        processes = tuple(p.value() for p in self.processes)
        model = None
        if catalog is not None and self.catalog_model is not None:
            model = catalog.find(self.catalog_model)
        return GpuView(
            self.info(),
            model,
            self.memory_slices,
            tuple(gi.value(processes) for gi in self.gpu_instances),
            processes,
        )


def _visible(process: ProcessView, visible: bool | None, viewer: str | None) -> bool:
    if visible is not None:
        return visible
    return viewer is None or (process.user is not None and process.user == viewer)


class InventoryOut(Wire):
    """The whole machine: every chosen GPU, the leases the caller may see, the soft devices."""

    description: str = Field(description="what was read: a simulated machine, or NVML + driver")
    gpus: list[GpuOut]
    leases: list[LeaseOut]
    soft_devices: list[SoftDeviceOut] = Field(
        default_factory=list,
        description="MPS shares of GPUs and MIG devices (isolation soft: "
        + SOFT_ISOLATION_NOTE
        + ")",
    )

    @classmethod
    def of(
        cls, inventory: Inventory, *, viewer: str | None = None, admin: bool = True
    ) -> InventoryOut:
        """``inventory`` as ``viewer`` may see it (an admin, or no viewer: everything)."""
        leases = [
            LeaseOut.of(
                lease,
                visible=admin or lease.user == viewer,
                mine=viewer is not None and lease.user == viewer,
            )
            for lease in inventory.leases
        ]
        by_uuid = {lease.uuid: lease for lease in leases if lease.active}
        return cls(
            description=inventory.description,
            gpus=[
                GpuOut.of_view(v, by_uuid, process_visible=True if admin else None, viewer=viewer)
                for v in inventory.gpus
            ],
            leases=leases,
            soft_devices=[SoftDeviceOut.of(v, by_uuid.get(v.uuid)) for v in inventory.soft],
        )

    def value(self, catalog: Catalog | None = None) -> Inventory:
        return Inventory(
            self.description,
            [gpu.view(catalog) for gpu in sorted(self.gpus, key=lambda g: g.index)],
            [lease.value() for lease in self.leases],
            [device.value() for device in self.soft_devices],
        )


class GiOut(Wire):
    """A GPU instance alone (``gi create``, ``gi list``)."""

    gpu_index: int
    id: int
    profile: str
    profile_id: int
    placement: PlacementOut
    memory_mib: int | None

    @classmethod
    def of(cls, gi: GpuInstance) -> GiOut:
        return cls(
            gpu_index=gi.gpu_index,
            id=gi.id,
            profile=gi.profile_name,
            profile_id=gi.profile_id,
            placement=PlacementOut.of(gi.placement),
            memory_mib=gi.memory_mib,
        )

    def value(self) -> GpuInstance:
        return GpuInstance(
            self.gpu_index,
            self.id,
            self.profile_id,
            self.profile,
            self.placement.value(),
            self.memory_mib,
        )


class GpuInstancesOut(Wire):
    gpu_instances: list[GiOut]


class ComputeInstancesOut(Wire):
    compute_instances: list[ComputeInstanceOut]


class DestroyedOut(Wire):
    """Ids destroyed on one GPU (GIs, or CIs of ``gi_id``)."""

    gpu: int
    gi_id: int | None = None
    ids: list[int]


class ModelsOut(Wire):
    """Live MIG geometry of GPUs by index."""

    models: dict[int, GpuModel]
