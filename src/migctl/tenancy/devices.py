"""The machine's MIG devices with the names and device files that exporters need.

Why this exists: the CDI spec, ``gres.conf`` and the Kubernetes export all describe "each MIG
device: its GPU, its UUID, its ``<gpu>:<n>`` index name, its device files". Index names follow
nvidia-container-toolkit's CDI "index" naming: ``<GPU index>:<MIG device index>``, where the MIG
device index is NVML's enumeration index on that GPU. migctl's backend does not report that
index, so it is computed as the position in (GI id, CI id) order, which is how the simulator's
NVML enumerates MIG devices; on a real driver that order is believed but not verified to match,
so the ``MIG-<uuid>`` names (always exact) are the ones to rely on there.
Importers: ``migctl.tenancy``.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.model import GpuInfo, MigDevice
from migctl.tenancy.devnodes import DeviceNodeReader, MigDeviceNodes, node_reader_for


@dataclass(frozen=True, slots=True)
class ExportedDevice:
    device: MigDevice
    gpu: GpuInfo
    mig_index: int  # position on its GPU in (GI id, CI id) order
    nodes: MigDeviceNodes

    @property
    def index_name(self) -> str:
        """``0:1`` for GPU 0's second MIG device (nvidia-ctk's index name)."""
        return f"{self.gpu.index}:{self.mig_index}"

    @property
    def full_gpu_instance(self) -> bool:
        """True when the compute instance spans its GPU instance (``1g.10gb``, not ``1c.2g...``)."""
        return self.device.ci_profile == self.device.gi_profile


def exported_devices(
    backend: Backend, reader: DeviceNodeReader | None = None
) -> list[ExportedDevice]:
    """Every MIG device, sorted by GPU index then placement, with names and device files."""
    reader = reader or node_reader_for(backend)
    result: list[ExportedDevice] = []
    for gpu in backend.gpus():
        if gpu.mig is None or not gpu.mig.current:
            continue
        devices = backend.mig_devices(gpu.index)
        order = sorted(devices, key=lambda d: (d.gi_id, d.ci_id))
        position = {(d.gi_id, d.ci_id): n for n, d in enumerate(order)}
        for device in devices:
            nodes = reader.nodes(gpu.pci_bus_id, device.gi_id, device.ci_id)
            index = position[(device.gi_id, device.ci_id)]
            result.append(ExportedDevice(device, gpu, index, nodes))
    return result
