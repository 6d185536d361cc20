"""Which device files a MIG device needs: ``/dev/nvidia<minor>`` and two ``nvidia-cap`` nodes.

Why this exists: a container (CDI spec) or a Slurm job (``gres.conf``) gets a MIG device by
being given its device files: the parent GPU's ``/dev/nvidia<minor>``, the GPU instance's
access capability and the compute instance's access capability
(``/dev/nvidia-caps/nvidia-cap<N>``). NVML does not report these numbers; the driver publishes
them in procfs, and this module reads them (the same files nvidia-container-toolkit and the
NVIDIA device plugin read):

* ``/proc/driver/nvidia/gpus/<domain:bus:dev.fn>/information``: line ``Device Minor: <n>``;
* ``/proc/driver/nvidia-caps/mig-minors``: lines ``gpu<minor>/gi<id>/access <N>`` and
  ``gpu<minor>/gi<id>/ci<id>/access <N>`` (a static table for every possible instance).

Both formats were checked on an H100 with driver 580.159.04. A simulated machine has no such
files, so there nothing is known (None) unless ``$MIGCTL_PROC_ROOT`` points at a directory
laid out like ``/`` (``<root>/proc/driver/...``), which tests and demos use.
Importers: ``migctl.tenancy``. Read paths degrade: unreadable means unknown, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migctl.backends.base import Backend

ENV_PROC_ROOT = "MIGCTL_PROC_ROOT"
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
CAPS_DIR = "/dev/nvidia-caps"


@dataclass(frozen=True, slots=True)
class MigDeviceNodes:
    """The device files of one MIG device; None where the driver's numbers are unknown."""

    gpu_node: str | None
    gi_cap: str | None
    ci_cap: str | None

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.gpu_node, self.gi_cap, self.ci_cap) if p is not None)

    @property
    def complete(self) -> bool:
        return None not in (self.gpu_node, self.gi_cap, self.ci_cap)


def is_simulated(backend: Backend) -> bool:
    """True for the simulator's backend (its description says so)."""
    return backend.description.startswith("simulated")


def proc_dir_name(pci_bus_id: str) -> str:
    """NVML's ``00000000:18:00.0`` -> procfs's ``0000:18:00.0`` (4-digit domain, lower case)."""
    domain, _, rest = pci_bus_id.strip().partition(":")
    try:
        return f"{int(domain, 16):04x}:{rest.lower()}"
    except ValueError:
        return pci_bus_id.lower()


class DeviceNodeReader:
    """Reads the driver's device numbers under ``root`` (None: nothing can be known)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._mig_minors: dict[str, int] | None = None

    @property
    def source(self) -> str:
        return "unknown" if self.root is None else str(self.root / "proc/driver")

    def gpu_minor(self, pci_bus_id: str) -> int | None:
        """The ``N`` of ``/dev/nvidiaN`` for the GPU at ``pci_bus_id``."""
        if self.root is None:
            return None
        info = self.root / "proc/driver/nvidia/gpus" / proc_dir_name(pci_bus_id) / "information"
        try:
            lines = info.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            key, _, value = line.partition(":")
            if key.strip() == "Device Minor" and value.strip().isdigit():
                return int(value.strip())
        return None

    def mig_minors(self) -> dict[str, int]:
        """``{"gpu0/gi1/access": 12, "gpu0/gi1/ci0/access": 13, ...}`` (empty when unknown)."""
        if self._mig_minors is None:
            self._mig_minors = self._read_mig_minors()
        return self._mig_minors

    def _read_mig_minors(self) -> dict[str, int]:
        if self.root is None:
            return {}
        try:
            text = (self.root / "proc/driver/nvidia-caps/mig-minors").read_text()
        except OSError:
            return {}
        table: dict[str, int] = {}
        for line in text.splitlines():
            name, _, number = line.strip().rpartition(" ")
            if name and number.isdigit():
                table[name] = int(number)
        return table

    def nodes(self, pci_bus_id: str, gi_id: int, ci_id: int) -> MigDeviceNodes:
        """The device files of the MIG device (GI ``gi_id``, CI ``ci_id``) on that GPU."""
        minor = self.gpu_minor(pci_bus_id)
        if minor is None:
            return MigDeviceNodes(None, None, None)
        table = self.mig_minors()
        gi_cap = table.get(f"gpu{minor}/gi{gi_id}/access")
        ci_cap = table.get(f"gpu{minor}/gi{gi_id}/ci{ci_id}/access")
        return MigDeviceNodes(
            gpu_node=f"/dev/nvidia{minor}",
            gi_cap=None if gi_cap is None else f"{CAPS_DIR}/nvidia-cap{gi_cap}",
            ci_cap=None if ci_cap is None else f"{CAPS_DIR}/nvidia-cap{ci_cap}",
        )


def node_reader_for(backend: Backend, proc_root: Path | None = None) -> DeviceNodeReader:
    """``proc_root`` (``MIGCTL_PROC_ROOT``) if given; nothing for the simulator; else ``/``."""
    if proc_root is not None:
        return DeviceNodeReader(proc_root)
    return DeviceNodeReader(None if is_simulated(backend) else Path("/"))
