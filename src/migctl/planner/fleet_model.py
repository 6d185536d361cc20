"""The fleet planner's values: GPUs as they are now, what each should become, and the plan.

Why this exists: the fleet controller, the benchmarks and the tests hand the fleet planner
the same picture (every GPU of every host, its model, its GPU instances with placements,
which of them are busy) and read back the same answer (per GPU: instances kept, destroyed
and created, with placements and the demand each one serves). A GPU instance is one MIG
device here (one compute instance spanning it), as the fleet runs one worker per device.

Values only; imports ``migctl.model`` and ``migctl.errors``. Anyone may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.errors import InvalidInputError
from migctl.model import GpuModel, Placement

# What makes two GPUs interchangeable for planning: model, and (profile, start, size, busy)
# of every instance, sorted.
Signature = tuple[str, tuple[tuple[str, int, int, bool], ...]]


@dataclass(frozen=True, slots=True, order=True)
class FleetInstance:
    """A GPU instance that exists now. ``busy`` ones are pinned: never destroyed or moved."""

    profile: str
    placement: Placement
    busy: bool = False
    gi_id: int | None = None  # the driver's id, carried through for the caller

    @property
    def slot(self) -> tuple[str, int, int]:
        return (self.profile, self.placement.start, self.placement.size)


@dataclass(frozen=True, slots=True)
class FleetGpu:
    """One GPU of the fleet: which host, which index there, its model and instances."""

    host: str
    index: int
    model: GpuModel
    instances: tuple[FleetInstance, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.host}/GPU {self.index}"

    def signature(self) -> Signature:
        return (
            self.model.key,
            tuple(sorted((*i.slot, i.busy) for i in self.instances)),
        )


@dataclass(frozen=True, slots=True)
class NewInstance:
    """An instance the plan creates: profile, placement, and the demand (index) it serves."""

    profile: str
    placement: Placement
    demand: int


@dataclass(frozen=True, slots=True)
class GpuTarget:
    """What one GPU should become. ``serves`` maps kept idle instances to demands."""

    host: str
    index: int
    model_key: str
    kept: tuple[FleetInstance, ...]  # busy and idle instances that stay, by placement
    destroyed: tuple[FleetInstance, ...]  # idle instances to destroy, by placement
    created: tuple[NewInstance, ...]  # by placement
    serves: tuple[tuple[FleetInstance, int], ...] = ()  # kept idle instance -> demand

    @property
    def changed(self) -> bool:
        return bool(self.destroyed or self.created)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "gpu": self.index,
            "model": self.model_key,
            "kept": [_instance_dict(i) for i in self.kept],
            "destroyed": [_instance_dict(i) for i in self.destroyed],
            "created": [
                {"profile": n.profile, "placement": str(n.placement), "demand": n.demand}
                for n in self.created
            ],
            "serves": [{**_instance_dict(i), "demand": d} for i, d in self.serves],
        }


def _instance_dict(instance: FleetInstance) -> dict[str, object]:
    return {
        "profile": instance.profile,
        "placement": str(instance.placement),
        "busy": instance.busy,
        "gi_id": instance.gi_id,
    }


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """The answer: targets for every GPU that changes or serves demand, and the costs.

    ``optimal``: the exact model proved every stage optimal (served, then destroyed idle
    instances, then reshaped GPUs). ``unmet_bound``: no plan can leave fewer instances
    unmet (from the LP relaxation or the exact model); ``unmet - unmet_bound`` is the gap.
    """

    targets: tuple[GpuTarget, ...]  # by (host, index)
    unmet: tuple[int, ...]  # per demand
    served: int
    destroyed: int
    reshaped: int
    method: str  # "milp" or "greedy"
    optimal: bool
    unmet_bound: int
    classes: int  # distinct GPU states
    groups: int  # states with distinct options (what the solver sees)
    options: int
    solve_time_s: float
    notes: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> tuple[GpuTarget, ...]:
        return tuple(t for t in self.targets if t.changed)

    def to_dict(self, include_timing: bool = True) -> dict[str, object]:
        """JSON-ready; without timing it is identical for identical inputs."""
        result: dict[str, object] = {
            "method": self.method,
            "optimal": self.optimal,
            "served": self.served,
            "unmet": list(self.unmet),
            "unmet_bound": self.unmet_bound,
            "destroyed": self.destroyed,
            "reshaped": self.reshaped,
            "classes": self.classes,
            "groups": self.groups,
            "options": self.options,
            "notes": list(self.notes),
            "targets": [t.to_dict() for t in self.targets],
        }
        if include_timing:
            result["solve_time_s"] = round(self.solve_time_s, 6)
        return result


def check_unique(gpus: Sequence[FleetGpu]) -> None:
    """Refuse two entries for one (host, GPU index): the plan would be ambiguous."""
    seen: set[tuple[str, int]] = set()
    for gpu in gpus:
        key = (gpu.host, gpu.index)
        if key in seen:
            raise InvalidInputError(
                f"{gpu.name} is listed twice in the fleet",
                hint="give each (host, GPU index) once",
                context={"host": gpu.host, "gpu": gpu.index},
            )
        seen.add(key)


def fleet_capacity(gpus: Sequence[FleetGpu]) -> int:
    """The most GPU instances the whole fleet could ever hold (caps absurd demand counts)."""
    total = 0
    for gpu in gpus:
        model: GpuModel = gpu.model
        total += model.max_gpu_instances or model.memory_slices or 0
    return total
