"""The nouns of reconfiguration: the current GPU, the desired layout, operations and a Plan.

Why this exists: the engine (apply), the CLI (dry runs), the service (plans over REST) and
tests all exchange the same plan; it must be explicit (every create names its placement),
ordered (executable as listed), JSON-serialisable and deterministic. The search that
builds a Plan lives in ``planner.reconfigure``; this module is values only.
Imports ``migctl.model`` only; anyone may import it.

A GI created by a plan has no id until the driver assigns one, so a ``CreateCi`` names its
GI by ``GiRef``: the GI's placement (unique on a GPU) and, for a GI that already exists,
its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from migctl.model import ComputeInstance, GpuInstance, Placement


@dataclass(frozen=True, slots=True)
class CurrentCi:
    """A compute instance that exists now; ``busy``: processes run on it or it is leased."""

    ci_id: int
    profile: str  # CI profile name, e.g. "1c.3g.40gb" or "3g.40gb"
    placement: Placement  # compute slices inside the GI
    busy: bool = False


@dataclass(frozen=True, slots=True)
class CurrentGi:
    """A GPU instance that exists now, with its CIs; ``busy`` marks a lease on the GI itself."""

    gi_id: int
    profile: str
    placement: Placement
    cis: tuple[CurrentCi, ...] = ()
    busy: bool = False

    @property
    def in_use(self) -> bool:
        return self.busy or any(ci.busy for ci in self.cis)

    @property
    def busy_count(self) -> int:
        """Busy things lost if this GI is destroyed: the GI's own lease plus busy CIs."""
        return int(self.busy) + sum(1 for ci in self.cis if ci.busy)

    def label(self) -> str:
        busy = [f"CI {ci.ci_id}" for ci in self.cis if ci.busy]
        state = f", busy: {', '.join(busy) or 'leased'}" if self.in_use else ""
        return f"GI {self.gi_id} ({self.profile} at {self.placement}{state})"


@dataclass(frozen=True, slots=True)
class CurrentGpu:
    """One GPU as it is now: MIG mode and its instances."""

    gpu_index: int
    gis: tuple[CurrentGi, ...] = ()
    mig_enabled: bool = True

    @classmethod
    def from_instances(
        cls,
        gpu_index: int,
        gis: Iterable[GpuInstance],
        cis: Iterable[ComputeInstance],
        *,
        busy_cis: Iterable[tuple[int, int]] = (),
        busy_gis: Iterable[int] = (),
        mig_enabled: bool = True,
    ) -> CurrentGpu:
        """Build from backend values; ``busy_cis`` holds (gi_id, ci_id) pairs in use."""
        busy_ci_set, busy_gi_set = set(busy_cis), set(busy_gis)
        ci_list = list(cis)
        current = []
        for gi in sorted(gis, key=lambda g: g.id):
            own = sorted((c for c in ci_list if c.gi_id == gi.id), key=lambda c: c.id)
            current.append(
                CurrentGi(
                    gi.id,
                    gi.profile_name,
                    gi.placement,
                    tuple(
                        CurrentCi(c.id, c.profile_name, c.placement, (gi.id, c.id) in busy_ci_set)
                        for c in own
                    ),
                    gi.id in busy_gi_set,
                )
            )
        return cls(gpu_index, tuple(current), mig_enabled)


@dataclass(frozen=True, slots=True)
class DesiredCi:
    profile: str  # CI profile name ("1c.3g.40gb"), or "<n>c" as a short form
    placement: Placement | None = None  # None: the planner chooses


@dataclass(frozen=True, slots=True)
class DesiredGi:
    """One wanted GPU instance; ``cis`` None means one CI spanning the whole GI."""

    profile: str
    placement: Placement | None = None
    cis: tuple[DesiredCi, ...] | None = None


@dataclass(frozen=True, slots=True)
class DesiredLayout:
    gis: tuple[DesiredGi, ...] = ()
    mig_enabled: bool = True


# Operations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GiRef:
    """A GI in a plan: its placement, and its id when it exists before the plan runs."""

    placement: Placement
    gi_id: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"placement": str(self.placement), "gi_id": self.gi_id}


@dataclass(frozen=True, slots=True)
class SetMigMode:
    kind: ClassVar[str] = "set_mig_mode"
    gpu_index: int
    enabled: bool

    def to_dict(self) -> dict[str, object]:
        return {"op": self.kind, "gpu": self.gpu_index, "enabled": self.enabled}


@dataclass(frozen=True, slots=True)
class DestroyCi:
    kind: ClassVar[str] = "destroy_ci"
    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    placement: Placement
    busy: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "op": self.kind,
            "gpu": self.gpu_index,
            "gi_id": self.gi_id,
            "ci_id": self.ci_id,
            "profile": self.profile,
            "placement": str(self.placement),
            "busy": self.busy,
        }


@dataclass(frozen=True, slots=True)
class DestroyGi:
    kind: ClassVar[str] = "destroy_gi"
    gpu_index: int
    gi_id: int
    profile: str
    placement: Placement
    busy: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "op": self.kind,
            "gpu": self.gpu_index,
            "gi_id": self.gi_id,
            "profile": self.profile,
            "placement": str(self.placement),
            "busy": self.busy,
        }


@dataclass(frozen=True, slots=True)
class CreateGi:
    kind: ClassVar[str] = "create_gi"
    gpu_index: int
    profile: str
    profile_id: int | None  # the driver's GI profile id (nvidia-smi's ID column)
    placement: Placement

    def to_dict(self) -> dict[str, object]:
        return {
            "op": self.kind,
            "gpu": self.gpu_index,
            "profile": self.profile,
            "profile_id": self.profile_id,
            "placement": str(self.placement),
        }


@dataclass(frozen=True, slots=True)
class CreateCi:
    kind: ClassVar[str] = "create_ci"
    gpu_index: int
    gi: GiRef
    profile: str
    profile_id: int  # NVML compute instance profile index (= the CI profile id)
    placement: Placement

    def to_dict(self) -> dict[str, object]:
        return {
            "op": self.kind,
            "gpu": self.gpu_index,
            "gi": self.gi.to_dict(),
            "profile": self.profile,
            "profile_id": self.profile_id,
            "placement": str(self.placement),
        }


Op = SetMigMode | DestroyCi | DestroyGi | CreateGi | CreateCi


@dataclass(frozen=True, slots=True)
class PlannedCi:
    profile: str
    placement: Placement
    ci_id: int | None = None  # set when the CI exists already and is kept


@dataclass(frozen=True, slots=True)
class PlannedGi:
    """A GI of the layout the plan reaches; ``gi_id`` is set when it is kept."""

    profile: str
    placement: Placement
    cis: tuple[PlannedCi, ...]
    gi_id: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered operations turning one GPU's current state into the desired layout."""

    gpu_index: int
    model_key: str
    ops: tuple[Op, ...]
    final: tuple[PlannedGi, ...]  # the layout after the plan, by placement
    kept_gi_ids: tuple[int, ...] = ()
    forced: tuple[str, ...] = field(default=())  # busy instances destroyed under force=True
    mig_mode: bool | None = None  # the MIG mode the plan sets, when it changes it

    @property
    def is_noop(self) -> bool:
        return not self.ops

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(("destroy_ci", "destroy_gi", "create_gi", "create_ci"), 0)
        for op in self.ops:
            if op.kind in counts:
                counts[op.kind] += 1
        return counts

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu_index,
            "model": self.model_key,
            "mig_mode": self.mig_mode,
            "ops": [op.to_dict() for op in self.ops],
            "kept_gi_ids": list(self.kept_gi_ids),
            "forced": list(self.forced),
            "summary": self.summary(),
            "final": [_planned_gi_dict(gi) for gi in self.final],
        }


def _planned_gi_dict(gi: PlannedGi) -> dict[str, object]:
    return {
        "profile": gi.profile,
        "placement": str(gi.placement),
        "gi_id": gi.gi_id,
        "cis": [
            {"profile": c.profile, "placement": str(c.placement), "ci_id": c.ci_id} for c in gi.cis
        ],
    }
