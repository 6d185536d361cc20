"""Value types shared by every layer, and the glossary they embody.

Why this module exists: one vocabulary for the whole project, so that the catalog, the
simulator, the NVML backend, the planner and the CLI pass the same small, frozen objects.
Anyone may import it; it imports only ``migctl.errors``.

Glossary (one word per concept):

GPU
    A physical NVIDIA GPU, numbered by its NVML index.
MIG mode
    Per GPU, *current* (in force) and *pending* (in force after the next reset).
Memory slice
    The unit of ``nvmlGpuInstancePlacement_t``: 8 per A100/H100/H200/B200-class GPU, 4 on
    an A30, 12 on an RTX PRO 6000 Blackwell. Placements count memory slices.
Compute slice
    The unit of SMs: 7 on 8-memory-slice parts. A 3g profile uses 3 compute slices but
    4 memory slices.
GPU instance (GI)
    An isolated partition with a GI profile (``3g.40gb``, NVML id 9) at a placement.
Placement
    ``start`` and ``size`` in memory slices (for a GI) or compute slices (for a CI).
Compute instance (CI)
    A set of SMs inside a GI, with a CI profile; several CIs share the GI's memory.
MIG device
    A CI as CUDA sees it, named by its ``MIG-<uuid>``.
Layout
    The desired set of instances on a GPU.
Plan
    Ordered operations that turn the current state into a layout.
Lease
    A MIG device granted to an owner until it is released or expires.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Placement:
    """Where an instance sits: ``start`` and ``size`` in slices (printed ``start:size``)."""

    start: int
    size: int

    @property
    def end(self) -> int:
        """One past the last slice."""
        return self.start + self.size

    def overlaps(self, other: Placement) -> bool:
        return self.start < other.end and other.start < self.end

    def mask(self) -> int:
        """The occupied slices as a bit mask (bit i = slice i)."""
        return ((1 << self.size) - 1) << self.start

    def __str__(self) -> str:
        return f"{self.start}:{self.size}"

    @classmethod
    def parse(cls, text: str) -> Placement:
        """Parse ``"4:2"``; raise ``ValueError`` on anything else."""
        start_text, sep, size_text = text.partition(":")
        if not sep:
            raise ValueError(f"placement {text!r} is not START:SIZE")
        start, size = int(start_text), int(size_text)
        if start < 0 or size <= 0:
            raise ValueError(f"placement {text!r} needs START >= 0 and SIZE > 0")
        return cls(start, size)


class Trust(enum.StrEnum):
    """How far a catalog entry can be believed, best first."""

    VERIFIED = "verified"  # checked against a real NVML capture of this GPU
    TRANSCRIPT = "transcript"  # copied from real nvidia-smi transcripts of this GPU
    DOCUMENTED = "documented"  # from NVIDIA documentation and configs, not measured
    PARTIAL = "partial"  # names and counts only; many values unknown
    CAPTURED = "captured"  # written by `migctl catalog capture` from a live GPU


@dataclass(frozen=True, slots=True)
class Engines:
    """Copy engines, video decoders/encoders, JPEG decoders, optical flow accelerators."""

    ce: int | None = None
    dec: int | None = None
    enc: int | None = None
    jpeg: int | None = None
    ofa: int | None = None


@dataclass(frozen=True, slots=True)
class GiProfile:
    """A GPU instance profile of one GPU model, as ``nvidia-smi mig -lgip`` shows it."""

    name: str  # "1g.10gb", without the driver's "MIG " prefix
    nvml_index: int  # NVML_GPU_INSTANCE_PROFILE_* passed to GetGpuInstanceProfileInfo
    id: int | None  # what the driver reports (nvidia-smi's ID column); None = unknown
    compute_slices: int
    memory_slices: int  # the placement size
    memory_mib: int | None
    sm_count: int | None
    engines: Engines
    max_instances: int
    placements: tuple[Placement, ...]  # empty when unknown
    placements_verified: bool  # False: placements are only the sibling pattern
    notes: str = ""

    @property
    def short(self) -> str:
        """The ``<g>g`` part: ``"3g"``."""
        return self.name.split(".", 1)[0]

    @property
    def is_media_extended(self) -> bool:
        """``+me``: the single instance per GPU that owns the OFA (and more)."""
        return self.name.endswith("+me")

    @property
    def is_all_media(self) -> bool:
        """``+me.all``: takes every media engine; only ``-me`` profiles may coexist."""
        return self.name.endswith("+me.all")

    @property
    def is_no_media(self) -> bool:
        return self.name.endswith("-me")


@dataclass(frozen=True, slots=True)
class CiProfile:
    """A compute instance profile inside one GI profile (``nvidia-smi mig -lcip``)."""

    gi_profile: str
    name: str
    nvml_index: int  # NVML_COMPUTE_INSTANCE_PROFILE_*; also the CI profile id
    compute_slices: int
    sm_count: int | None
    max_instances: int
    placements: tuple[Placement, ...]  # in compute slices inside the GI
    is_default: bool  # the CI spanning the whole GI (marked * by nvidia-smi)
    derived: bool  # True: not published; derived from the A100 pattern
    source: str = ""

    @property
    def id(self) -> int:
        return self.nvml_index


@dataclass(frozen=True, slots=True)
class Derivation:
    """A value the catalog does not publish, derived only so that the model can be simulated.

    ``profile`` is a GI profile name, ``"CI <name>"`` for a compute-instance profile, or
    ``""`` for the model itself; ``field`` names the attribute (``memory_mib``, ``sm_count``,
    ``id``, ``ce``, ``memory_slices``, ``placements``, ...).
    """

    profile: str
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.profile} " if self.profile else ""
        return f"{where}{self.field} = {self.value}: {self.reason}"


@dataclass(frozen=True, slots=True)
class GpuModel:
    """One GPU model's MIG geometry, with its provenance."""

    key: str  # stable slug, e.g. "h100-80gb-hbm3"
    name: str
    nvidia_smi_name: str
    architecture: str | None
    compute_capability: str | None
    pci_device_ids: tuple[int, ...]  # the 16-bit device part, e.g. 0x2330
    memory_slices: int | None
    compute_slices: int | None
    max_gpu_instances: int | None
    total_memory_mib: int | None
    sm_count: int | None
    driver_min: str | None
    gi_profiles: tuple[GiProfile, ...]
    ci_profiles: tuple[CiProfile, ...]
    trust: Trust
    confidence: str
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    mig_capable: bool = True
    # values filled in to simulate the model (migctl.catalog.complete); empty in the catalog
    derivations: tuple[Derivation, ...] = ()

    @property
    def placements_verified(self) -> bool:
        """True when every GI profile's placements come from the driver or a transcript."""
        return bool(self.gi_profiles) and all(p.placements_verified for p in self.gi_profiles)

    @property
    def plannable(self) -> bool:
        """Enough is known (slices and placements of every profile) to plan and simulate."""
        return (
            self.mig_capable
            and self.memory_slices is not None
            and bool(self.gi_profiles)
            and all(p.placements for p in self.gi_profiles)
        )

    def gi_profile(self, name_or_id: str | int) -> GiProfile | None:
        """Find a GI profile by name (``3g.40gb``, ``MIG 3g.40gb``) or driver id (9)."""
        for profile in self.gi_profiles:
            if isinstance(name_or_id, int):
                if profile.id == name_or_id:
                    return profile
            elif profile.name == normalize_profile_name(name_or_id):
                return profile
        return None

    def ci_profiles_for(self, gi_profile: str) -> tuple[CiProfile, ...]:
        return tuple(c for c in self.ci_profiles if c.gi_profile == gi_profile)

    def derived_fields(self, profile: str) -> frozenset[str]:
        """The fields of one GI profile (or ``""``: the model) whose values are derived."""
        return frozenset(d.field for d in self.derivations if d.profile == profile)


def normalize_profile_name(text: str) -> str:
    """``"MIG 3g.40gb"`` / ``" 3G.40GB "`` -> ``"3g.40gb"``."""
    cleaned = text.strip()
    if cleaned.upper().startswith("MIG "):
        cleaned = cleaned[4:]
    return cleaned.strip().lower()


@dataclass(frozen=True, slots=True)
class MigMode:
    current: bool
    pending: bool

    @property
    def change_pending(self) -> bool:
        return self.current != self.pending


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """A physical GPU as the backend sees it right now."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str
    pci_device_id: int  # 16-bit device part
    memory_total_mib: int
    memory_used_mib: int
    mig: MigMode | None  # None: this GPU does not support MIG
    pci_subsystem_id: int | None = None  # subsystem device << 16 | vendor; None: unknown

    @property
    def mig_capable(self) -> bool:
        return self.mig is not None


@dataclass(frozen=True, slots=True)
class GpuInstance:
    gpu_index: int
    id: int
    profile_id: int
    profile_name: str
    placement: Placement
    memory_mib: int | None = None


@dataclass(frozen=True, slots=True)
class ComputeInstance:
    gpu_index: int
    gi_id: int
    id: int
    profile_id: int
    profile_name: str
    placement: Placement


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process on a GPU; ``gi_id``/``ci_id`` are set when it runs on a MIG device."""

    pid: int
    used_memory_mib: int | None
    gi_id: int | None = None
    ci_id: int | None = None


@dataclass(frozen=True, slots=True)
class MigDevice:
    """A compute instance as CUDA sees it."""

    uuid: str  # "MIG-..."
    gpu_index: int
    gi_id: int
    ci_id: int
    gi_profile: str
    ci_profile: str
    placement: Placement  # the GI's placement in memory slices
    memory_total_mib: int
    memory_used_mib: int
    processes: tuple[GpuProcess, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """``nvidia-smi -L`` style name: ``MIG 3g.40gb`` or ``MIG 1c.3g.40gb``."""
        return f"MIG {self.ci_profile}"


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    """A GI profile on one live GPU: what the driver reports, and how many are free now."""

    gpu_index: int
    profile: GiProfile
    free: int  # remaining capacity; 0 when MIG is off
    total: int


@dataclass(frozen=True, slots=True)
class CiProfileStatus:
    gpu_index: int
    gi_id: int
    profile: CiProfile
    free: int
    total: int


# What is on a GPU, joined (built by ``migctl.inventory``) ---------------------------------


@dataclass(frozen=True, slots=True)
class ProcessView:
    pid: int
    used_memory_mib: int | None
    gi_id: int | None
    ci_id: int | None
    user: str | None
    command: str | None


@dataclass(frozen=True, slots=True)
class InstanceView:
    """A GPU instance with its compute instances and the MIG devices they are."""

    gi: GpuInstance
    cis: tuple[ComputeInstance, ...]
    devices: tuple[MigDevice, ...]


@dataclass(frozen=True, slots=True)
class GpuView:
    info: GpuInfo
    model: GpuModel | None  # the catalog's entry, if known
    memory_slices: int | None  # from the driver's placements; None without MIG
    instances: tuple[InstanceView, ...] = ()
    processes: tuple[ProcessView, ...] = field(default_factory=tuple)

    @property
    def devices(self) -> tuple[MigDevice, ...]:
        return tuple(d for i in self.instances for d in i.devices)


@dataclass(frozen=True, slots=True)
class GpuProfiles:
    """What ``nvidia-smi mig -lgip`` / ``-lcip`` tell about one GPU: its live geometry, how
    many of each GI profile are free, and each existing GI's CI profiles (by GI id)."""

    gpu_index: int
    model: GpuModel
    gi_profiles: list[ProfileStatus]
    ci_profiles: dict[int, list[CiProfileStatus]]
