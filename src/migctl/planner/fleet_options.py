"""What each distinct GPU state of a fleet could become: its Pareto set of reshape options.

Why this exists: a fleet of 20,000 GPUs holds far fewer distinct states (model, instances
with placements, which are busy), and GPUs in one state are interchangeable. For each
state this module lists the *options*: destroy a subset of the idle instances, then add a
maximal set of the demanded profiles beside what stays (busy instances never move). An
option's worth is its *supply* (per demanded profile: kept idle instances plus the room
for new ones) and its cost (idle instances destroyed; any change reshapes the GPU).
Options that another option beats (destroys a subset and supplies at least as much) are
dropped, and states whose option values coincide form one *group* for the solver, so the
optimisation grows with the variety of states, never with the GPU count.

Exact: every subset of idle instances is tried and every addition is checked with the
planner's exhaustive ``place``. Pure; imported by the fleet planner modules only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.errors import InvalidInputError
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner.fleet_model import FleetGpu, Signature
from migctl.planner.packing_model import Demand
from migctl.planner.placement import place
from migctl.planner.profiles import require_plannable, resolve_profile, size_key

Names = tuple[str, ...]
KeptKey = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Option:
    """Destroy the idle instances in bit mask ``destroy``; room for ``added`` beside the rest."""

    destroy: int
    added: Names
    supply: tuple[int, ...]  # per demanded profile of the model
    destroyed: int

    @property
    def change(self) -> bool:
        return bool(self.destroy or self.added)

    @property
    def value(self) -> tuple[bool, int, tuple[int, ...]]:
        return (self.change, self.destroyed, self.supply)


@dataclass
class StateClass:
    """GPUs in one state: their shared occupants and options (``options[0]``: no change)."""

    signature: Signature
    model: GpuModel
    gpus: list[FleetGpu]
    busy: tuple[Occupant, ...]
    idle: tuple[Occupant, ...]
    options: list[Option] = field(default_factory=list)


@dataclass
class ModelRoom:
    """Per GPU model: the demanded profiles and memoised placement questions."""

    model: GpuModel
    profiles: tuple[GiProfile, ...]  # demanded on this model, largest first
    _fits: dict[tuple[KeptKey, Names], bool] = field(default_factory=dict)
    _maximal: dict[KeptKey, list[Names]] = field(default_factory=dict)

    @property
    def names(self) -> Names:
        return tuple(p.name for p in self.profiles)

    def fits(self, kept: Sequence[Occupant], key: KeptKey, names: Names) -> bool:
        memo = (key, names)
        if memo not in self._fits:
            self._fits[memo] = self._check(kept, names)
        return self._fits[memo]

    def _check(self, kept: Sequence[Occupant], names: Names) -> bool:
        limit = self.model.max_gpu_instances
        if limit is not None and len(kept) + len(names) > limit:
            return False
        wanted = [p for n in names for p in self.profiles if p.name == n]
        free = (self.model.memory_slices or 0) - sum(o.placement.size for o in kept)
        if sum(p.memory_slices for p in wanted) > free:
            return False
        return place(self.model, wanted, kept) is not None

    def maximal(self, kept: Sequence[Occupant]) -> list[Names]:
        """Maximal multisets of demanded profiles that fit beside ``kept`` (sorted names)."""
        key = kept_key(kept)
        if key not in self._maximal:
            self._maximal[key] = self._search(kept, key)
        return self._maximal[key]

    def _search(self, kept: Sequence[Occupant], key: KeptKey) -> list[Names]:
        found: set[Names] = set()

        def extend(start: int, chosen: list[str]) -> None:
            grew = False
            for index in range(start, len(self.profiles)):
                trial = tuple(sorted([*chosen, self.profiles[index].name]))
                if self.fits(kept, key, trial):
                    grew = True
                    extend(index, list(trial))
            if not grew and chosen:
                found.add(tuple(sorted(chosen)))

        extend(0, [])
        maximal = {
            names
            for names in found
            if not any(self.fits(kept, key, tuple(sorted((*names, n)))) for n in self.names)
        }
        return sorted(maximal, key=lambda n: (-len(n), n))


def kept_key(occupants: Sequence[Occupant]) -> KeptKey:
    return tuple(sorted((o.profile.name, o.placement.start, o.placement.size) for o in occupants))


def model_rooms(models: Sequence[GpuModel], demands: Sequence[Demand]) -> dict[str, ModelRoom]:
    rooms = {}
    for model in models:
        require_plannable(model)
        wanted = {p.name: p for d in demands if d.count for p in d.candidates(model)}
        ordered = sorted(wanted.values(), key=size_key, reverse=True)
        rooms[model.key] = ModelRoom(model, tuple(ordered))
    return rooms


def _occupants(gpu: FleetGpu) -> tuple[tuple[Occupant, ...], tuple[Occupant, ...]]:
    """Busy and idle occupants in signature order; refuse an illegal current state."""
    busy: list[Occupant] = []
    idle: list[Occupant] = []
    placed: list[Occupant] = []
    for profile_name, start, size, is_busy in gpu.signature()[1]:
        profile = resolve_profile(gpu.model, profile_name)
        occupant = Occupant(profile, Placement(start, size))
        refusal = placement_refusal(gpu.model, profile, occupant.placement, placed)
        if refusal is not None:
            raise InvalidInputError(
                f"{gpu.name} ({gpu.model.name}): its reported instances are not a legal "
                f"layout: {refusal}",
                hint="read the GPU's state again; the inventory is inconsistent",
                context={"host": gpu.host, "gpu": gpu.index},
            )
        placed.append(occupant)
        (busy if is_busy else idle).append(occupant)
    return tuple(busy), tuple(idle)


def _supply(room: ModelRoom, idle_kept: Sequence[Occupant], added: Names) -> tuple[int, ...]:
    names = [o.profile.name for o in idle_kept] + list(added)
    return tuple(names.count(n) for n in room.names)


def _dominated(option: Option, kept: Sequence[Option]) -> bool:
    return any(
        other.change
        and other.destroy & option.destroy == other.destroy
        and all(a >= b for a, b in zip(other.supply, option.supply, strict=True))
        for other in kept
    )


def class_options(
    room: ModelRoom, busy: Sequence[Occupant], idle: Sequence[Occupant]
) -> list[Option]:
    """``[no change, *Pareto options]`` in a canonical order (by value, then by choice)."""
    candidates: list[Option] = []
    for mask in range(1 << len(idle)):
        stays = [o for i, o in enumerate(idle) if not mask >> i & 1]
        for added in room.maximal([*busy, *stays]):
            destroyed = bin(mask).count("1")
            candidates.append(Option(mask, added, _supply(room, stays, added), destroyed))
    candidates.sort(key=lambda o: (o.destroyed, [-s for s in o.supply], o.destroy, o.added))
    kept: list[Option] = []
    values: set[tuple[bool, int, tuple[int, ...]]] = set()
    for option in candidates:
        if option.value in values or _dominated(option, kept):
            continue
        kept.append(option)
        values.add(option.value)
    no_change = Option(0, (), _supply(room, idle, ()), 0)
    return [no_change, *sorted(kept, key=lambda o: (o.value, o.destroy, o.added))]


def state_classes(gpus: Sequence[FleetGpu], rooms: dict[str, ModelRoom]) -> list[StateClass]:
    """GPUs grouped by signature (sorted), each class with its options."""
    by_signature: dict[Signature, list[FleetGpu]] = {}
    for gpu in gpus:
        by_signature.setdefault(gpu.signature(), []).append(gpu)
    classes = []
    for signature in sorted(by_signature):
        members = sorted(by_signature[signature], key=lambda g: (g.host, g.index))
        busy, idle = _occupants(members[0])
        room = rooms[signature[0]]
        entry = StateClass(signature, members[0].model, members, busy, idle)
        entry.options = class_options(room, busy, idle)
        classes.append(entry)
    return classes
