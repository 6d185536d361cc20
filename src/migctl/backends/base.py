"""The one door to the hardware: the ``Backend`` protocol, in migctl's own types.

Why this exists: everything above the backends (engine, planner callers, CLI, service)
talks to GPUs through this protocol and never sees NVML types or return codes. There is
one implementation, ``backends/nvml.py``, which drives pynvml over the real
``libnvidia-ml.so`` or over the simulator's library; tests may wrap it but never replace
it with a second fake.

Contract: read methods may degrade (a value the driver does not report becomes None or
an empty list); write methods never do — they raise a ``MigctlError`` on any failure and
refuse with ``ReadOnlyError`` before any driver call when the backend is read-only.
Every create takes an explicit placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from migctl.model import (
    CiProfileStatus,
    ComputeInstance,
    GpuInfo,
    GpuInstance,
    GpuModel,
    GpuProcess,
    MigDevice,
    Placement,
    ProfileStatus,
)


@dataclass(frozen=True, slots=True)
class ModeChange:
    """Outcome of a MIG mode change on one GPU."""

    gpu_index: int
    enabled: bool  # the mode asked for
    current: bool  # in force now
    pending: bool  # in force after the next reset
    reason: str | None  # why it is still pending (processes, reset needed), or None

    @property
    def done(self) -> bool:
        return self.current == self.enabled


class Backend(Protocol):
    """What migctl needs from a GPU driver. GPUs are named by NVML index."""

    @property
    def read_only(self) -> bool: ...

    @property
    def description(self) -> str:
        """``"NVML 13.580.159.04, driver 580.159.04"`` or ``"simulated dgx-h100 (...)"``."""
        ...

    @property
    def files_dir(self) -> Path | None:
        """Where a simulated machine keeps its own files (apply journal, lease database, CDI
        spec); None for the real host, whose files live at the host's paths."""
        ...

    def close(self) -> None: ...

    def driver_version(self) -> str: ...

    def gpus(self) -> list[GpuInfo]: ...

    def gpu(self, index: int) -> GpuInfo: ...

    def catalog_model(self, index: int) -> GpuModel | None:
        """The catalog's entry for this GPU (by PCI id, then name), if any."""
        ...

    def live_model(self, index: int) -> GpuModel:
        """This GPU's MIG geometry as the driver reports it (profiles, placements, CIs)."""
        ...

    def gi_profiles(self, index: int) -> list[ProfileStatus]: ...

    def gpu_instances(self, index: int) -> list[GpuInstance]: ...

    def create_gpu_instance(
        self, index: int, profile_id: int, placement: Placement
    ) -> GpuInstance: ...

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None: ...

    def ci_profiles(self, index: int, gi_id: int) -> list[CiProfileStatus]: ...

    def compute_instances(self, index: int, gi_id: int) -> list[ComputeInstance]: ...

    def create_compute_instance(
        self, index: int, gi_id: int, profile_id: int, placement: Placement
    ) -> ComputeInstance: ...

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None: ...

    def mig_devices(self, index: int) -> list[MigDevice]: ...

    def processes(self, index: int) -> list[GpuProcess]: ...

    def set_mig_mode(self, index: int, enabled: bool) -> ModeChange: ...
