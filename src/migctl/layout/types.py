"""Value types of layout files: what a file says (rules) and what one GPU must look like.

Why this exists: the native format and NVIDIA mig-parted configs are two spellings of the
same intent, and apply/assert/export must not care which one a user wrote. Both readers
produce a :class:`Layout` (ordered rules with their key paths, for error messages);
:func:`migctl.layout.resolve` turns a layout and a machine into one :class:`GpuLayout`
per GPU, the value the engine plans against. Pure, frozen data; imports
``migctl.model`` and ``migctl.catalog``. Anyone may import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from migctl.catalog import normalize_key
from migctl.errors import InvalidInputError
from migctl.layout.problems import LineIndex, invalid
from migctl.layout.shares import NO_SHARES, GpuShares, ShareLayout
from migctl.model import GpuModel

NVIDIA_PCI_VENDOR = 0x10DE


@dataclass(frozen=True, slots=True, order=True)
class WantedInstance:
    """One GPU instance a layout wants: GI profile, fixed start (or None) and its CIs.

    ``compute`` lists the compute instance profile names inside the GI, in creation
    order; the default (one CI spanning the GI) is spelled out, so ``()`` really means
    "no compute instance".
    """

    profile: str
    start_slice: int | None
    compute: tuple[str, ...]

    def sort_key(self) -> tuple[bool, int, str, tuple[str, ...]]:
        """Fixed placements first, by start; then by profile name and CI layout."""
        return (self.start_slice is None, self.start_slice or 0, self.profile, self.compute)


@dataclass(frozen=True, slots=True)
class GpuLayout:
    """What one GPU must look like: MIG mode, the GPU instances (canonical order) and the
    soft shares of the whole GPU or of its MIG devices (``migctl.layout.shares``)."""

    mig_enabled: bool
    instances: tuple[WantedInstance, ...] = ()
    shares: GpuShares = NO_SHARES

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.instances, key=WantedInstance.sort_key))
        object.__setattr__(self, "instances", ordered)

    @classmethod
    def disabled(cls) -> GpuLayout:
        return cls(False, ())


@dataclass(frozen=True, slots=True)
class MachineGpu:
    """A GPU of the machine a layout is resolved against.

    ``pci_device_id`` is the 16-bit device part NVML reports, when known; without it a
    PCI selector matches any of the model's device ids. ``pci_subsystem_id`` is needed only
    by selectors that name a subsystem; unknown, they do not match.
    """

    index: int
    model: GpuModel
    pci_device_id: int | None = None
    pci_subsystem_id: int | None = None  # NVML's 32 bits: subsystem device << 16 | vendor

    @property
    def label(self) -> str:
        return f"GPU {self.index} ({self.model.name})"

    def pci_ids(self) -> tuple[int, ...]:
        if self.pci_device_id is not None:
            return (self.pci_device_id,)
        return self.model.pci_device_ids


class LayoutFormat(enum.StrEnum):
    NATIVE = "migctl/v1"
    MIG_PARTED = "mig-parted/v1"


@dataclass(frozen=True, slots=True)
class PciId:
    """A PCI id from a selector: 16-bit device, vendor (NVIDIA unless given), and optionally
    the subsystem (32 bits: subsystem device << 16 | subsystem vendor), which must then
    match too. ``PciId(0, 0)`` is what mig-parted makes of a filter it cannot read: it
    matches no GPU.
    """

    device: int
    vendor: int = NVIDIA_PCI_VENDOR
    subsystem: int | None = None

    def __str__(self) -> str:
        text = f"0x{self.device:04X}{self.vendor:04X}"
        return text if self.subsystem is None else f"{text}:0x{self.subsystem:08X}"

    def matches(self, gpu: MachineGpu) -> bool:
        if self.vendor != NVIDIA_PCI_VENDOR or self.device not in gpu.pci_ids():
            return False
        return self.subsystem is None or self.subsystem == gpu.pci_subsystem_id


@dataclass(frozen=True, slots=True)
class Selector:
    """Which GPUs a rule applies to: every constraint given (not None) must hold.

    An empty tuple is a constraint nothing meets (mig-parted's ``devices: []``).
    """

    indexes: tuple[int, ...] | None = None
    models: tuple[str, ...] | None = None
    pci_ids: tuple[PciId, ...] | None = None

    @property
    def is_all(self) -> bool:
        return self.indexes is None and self.models is None and self.pci_ids is None

    def matches(self, gpu: MachineGpu) -> bool:
        if self.indexes is not None and gpu.index not in self.indexes:
            return False
        if self.models is not None and not any(model_matches(n, gpu.model) for n in self.models):
            return False
        return self.pci_ids is None or any(pci.matches(gpu) for pci in self.pci_ids)

    def describe(self) -> str:
        parts: list[str] = []
        if self.indexes is not None:
            parts.append("index " + (",".join(str(i) for i in self.indexes) or "(none)"))
        if self.models is not None:
            parts.append("model " + (",".join(self.models) or "(none)"))
        if self.pci_ids is not None:
            parts.append("PCI id " + (",".join(str(p) for p in self.pci_ids) or "(none)"))
        return " and ".join(parts) or "all GPUs"


def model_matches(name: str, model: GpuModel) -> bool:
    """Whether a catalog name, alias or PCI id written by a user denotes ``model``."""
    wanted = normalize_key(name)
    names = (model.key, *model.aliases, model.name, model.nvidia_smi_name)
    if wanted in {normalize_key(n) for n in names}:
        return True
    pci = parse_pci_text(wanted)
    return pci is not None and pci.device in model.pci_device_ids


def _hex_id(text: str, lengths: tuple[int, ...]) -> int | None:
    digits = text.strip().lower().removeprefix("0x")
    if len(digits) not in lengths or any(c not in "0123456789abcdef" for c in digits):
        return None
    return int(digits, 16)


def parse_pci_text(text: str) -> PciId | None:
    """``0x2330``, ``2330``, ``0x233010DE`` (device + vendor) or ``0x233010DE:0x16C110DE``
    (and the subsystem device + vendor); None when it is none of these."""
    primary, _, subsystem_text = text.partition(":")
    value = _hex_id(primary, (4, 8))
    if value is None:
        return None
    subsystem = None
    if subsystem_text:
        subsystem = _hex_id(subsystem_text, (8,))
        if subsystem is None:
            return None
    if len(primary.strip().lower().removeprefix("0x")) == 8:
        return PciId(value >> 16, value & 0xFFFF, subsystem)
    return PciId(value, subsystem=subsystem)


@dataclass(frozen=True, slots=True)
class InstanceRule:
    """One ``instances`` entry (or one mig-parted ``mig-devices`` item), not yet resolved.

    ``compute`` None means the GI's default CI; ``compute_from_name`` marks a mig-parted
    ``<c>c.<g>g.<gb>gb`` key, whose CI comes from the name.
    """

    key_path: str
    profile: str
    profile_path: str
    count: int
    starts: tuple[int, ...] | None = None
    compute: tuple[str, ...] | None = None
    compute_from_name: bool = False
    shares: ShareLayout | None = None  # soft shares of each MIG device the entry creates


@dataclass(frozen=True, slots=True)
class LayoutRule:
    """One ``gpus`` entry: a selector and what the selected GPUs must look like."""

    key_path: str
    selector: Selector
    mig_enabled: bool
    instances: tuple[InstanceRule, ...] = ()
    optional: bool = False  # True: matching no GPU is fine (mig-parted semantics)
    skips_gpus_without_mig: bool = False  # mig-parted's devices: all (see resolve)
    mig_path: str = ""  # key paths for errors: the MIG flag, the instance list, the selector
    instances_path: str = ""
    select_path: str = ""
    shares: ShareLayout | None = None  # soft shares of the whole GPU (MIG off)


@dataclass(frozen=True, slots=True)
class Layout:
    """A named layout from a file: rules in file order (later ones override earlier)."""

    name: str
    source: str
    format: LayoutFormat
    rules: tuple[LayoutRule, ...]
    description: str | None = None
    key_path: str = ""
    lines: LineIndex = field(default_factory=LineIndex, compare=False, repr=False)

    def error(self, path: str, message: str, hint: str) -> InvalidInputError:
        """An InvalidInputError at ``path`` of this layout's file (with its line)."""
        return invalid(self.source, path, message, hint, line=self.lines.line_of_path(path))


@dataclass(frozen=True, slots=True)
class LayoutFile:
    """Every named layout of one file, in file order."""

    source: str
    format: LayoutFormat
    layouts: tuple[Layout, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layout.name for layout in self.layouts)

    def get(self, name: str) -> Layout | None:
        return next((layout for layout in self.layouts if layout.name == name), None)
