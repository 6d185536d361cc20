"""Can these GPU instances live on one GPU? Placements if so, a precise "why not" if not.

Why this exists: every layout request (a file, ``migctl create``, the service) ends in
this question, and a bare "Insufficient Resources" helps no one. ``plan_gpu`` answers
exactly (exhaustive search over the catalog's placements) and, when the answer is no,
raises ``InfeasibleError`` naming the limit that is hit (a profile's ``max_instances``,
the GPU's ``max_gpu_instances``, ``+me.all`` exclusivity, too few memory slices, or
placements that collide) with the nearest layouts that do fit.

Pure: imports ``migctl.model``, ``migctl.geometry``, ``migctl.errors`` and the planner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError
from migctl.geometry import Occupant, occupied_mask
from migctl.model import GiProfile, GpuModel
from migctl.planner.nearest import NearestLayout, nearest_layouts
from migctl.planner.placement import place
from migctl.planner.profiles import count_text, require_plannable, resolve_profiles, size_key


@dataclass(frozen=True, slots=True)
class Obstacle:
    """One reason a layout does not fit. ``kind`` is stable; ``message`` is for people."""

    kind: str  # max_instances | max_gpu_instances | media_exclusive | memory_slices | collision
    message: str
    profile: str | None = None
    needed: int | None = None
    limit: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "profile": self.profile,
            "needed": self.needed,
            "limit": self.limit,
        }


class InfeasibleError(InsufficientResourcesError):
    """The wanted instances cannot all be placed; says why and what would fit instead."""

    def __init__(
        self,
        message: str,
        *,
        model_key: str,
        wanted: Sequence[str],
        obstacles: Sequence[Obstacle],
        nearest: Sequence[NearestLayout] = (),
        hint: str | None = None,
        context: Mapping[str, object] | None = None,
    ) -> None:
        self.model_key = model_key
        self.wanted = tuple(wanted)
        self.obstacles = tuple(obstacles)
        self.nearest = tuple(nearest)
        full_context: dict[str, object] = {
            "model": model_key,
            "wanted": list(self.wanted),
            "obstacles": [o.kind for o in self.obstacles],
            "nearest": [n.describe() for n in self.nearest],
        }
        full_context.update(context or {})
        super().__init__(message, hint=hint, context=full_context)

    def to_dict(self) -> dict[str, object]:
        result = super().to_dict()
        result["obstacles"] = [o.to_dict() for o in self.obstacles]
        result["nearest"] = [n.to_dict() for n in self.nearest]
        return result


def _limit_obstacles(
    model: GpuModel, wanted: Sequence[GiProfile], existing: Sequence[Occupant]
) -> list[Obstacle]:
    everyone = [*(o.profile for o in existing), *wanted]
    found: list[Obstacle] = []
    counts = Counter(p.name for p in everyone)
    by_name = {p.name: p for p in everyone}
    for name in sorted(counts, key=lambda n: size_key(by_name[n]), reverse=True):
        profile = by_name[name]
        if counts[name] > profile.max_instances:
            found.append(
                Obstacle(
                    "max_instances",
                    f"{name} allows at most {profile.max_instances} per GPU "
                    f"({counts[name]} would exist)",
                    profile=name,
                    needed=counts[name],
                    limit=profile.max_instances,
                )
            )
    limit = model.max_gpu_instances
    if limit is not None and len(everyone) > limit:
        found.append(
            Obstacle(
                "max_gpu_instances",
                f"{model.name} allows at most {limit} GPU instances ({len(everyone)} would exist)",
                needed=len(everyone),
                limit=limit,
            )
        )
    found.extend(_media_obstacles(everyone))
    return found


def _media_obstacles(everyone: Sequence[GiProfile]) -> list[Obstacle]:
    holders = sorted({p.name for p in everyone if p.is_all_media})
    others = sorted({p.name for p in everyone if not p.is_no_media and not p.is_all_media})
    if not holders or (len(holders) == 1 and not others and _count(everyone, holders[0]) == 1):
        return []
    beside = others or holders[1:] or holders
    return [
        Obstacle(
            "media_exclusive",
            f"{holders[0]} takes every media engine: only -me profiles may be beside it, "
            f"not {', '.join(beside)}",
            profile=holders[0],
        )
    ]


def _count(profiles: Sequence[GiProfile], name: str) -> int:
    return sum(1 for p in profiles if p.name == name)


def _slice_obstacle(
    model: GpuModel, wanted: Sequence[GiProfile], existing: Sequence[Occupant]
) -> Obstacle | None:
    total = model.memory_slices or 0
    held = bin(occupied_mask(existing)).count("1")
    needed = sum(p.memory_slices for p in wanted)
    if needed <= total - held:
        return None
    held_text = f", {held} held by existing instances" if held else ""
    return Obstacle(
        "memory_slices",
        f"{count_text(wanted)} need {needed} memory slices; {model.name} has {total}{held_text}",
        needed=needed,
        limit=total - held,
    )


def _collision_obstacle(
    model: GpuModel,
    wanted: Sequence[GiProfile],
    existing: Sequence[Occupant],
    nearest: Sequence[NearestLayout],
) -> Obstacle:
    """Counts and slices allow it, yet placements collide: show where, for one left out."""
    drop = next((n for n in nearest if n.dropped and not n.replaced), None)
    if drop is None:
        return Obstacle("collision", f"the placements of {count_text(wanted)} collide")
    placed = [*existing, *drop.occupants]
    profile = next(p for p in wanted if p.name == drop.dropped[0])
    blocked = []
    for placement in profile.placements:
        blockers = [o for o in placed if o.placement.overlaps(placement)]
        held = " and ".join(f"{o.profile.name} at {o.placement}" for o in blockers)
        blocked.append(f"{placement} overlaps {held}")
    free = _free_ranges(model, placed)
    return Obstacle(
        "collision",
        f"memory slices collide: with {_describe(placed)}, {profile.name} has no free "
        f"placement ({'; '.join(blocked)}); free slices {free} fit no {profile.name}",
        profile=profile.name,
    )


def _describe(occupants: Sequence[Occupant]) -> str:
    ordered = sorted(occupants, key=lambda o: o.placement.start)
    return ", ".join(f"{o.profile.name} at {o.placement}" for o in ordered)


def _free_ranges(model: GpuModel, occupants: Sequence[Occupant]) -> str:
    taken = occupied_mask(occupants)
    free = [i for i in range(model.memory_slices or 0) if not taken >> i & 1]
    if not free:
        return "none"
    ranges: list[str] = []
    start = previous = free[0]
    for index in [*free[1:], -2]:
        if index != previous + 1:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = index
        previous = index
    return ",".join(ranges)


def diagnose(
    model: GpuModel,
    wanted: Sequence[GiProfile],
    existing: Sequence[Occupant] = (),
    nearest_limit: int = 5,
) -> InfeasibleError:
    """The error explaining why ``wanted`` does not fit beside ``existing``."""
    nearest = nearest_layouts(model, wanted, existing, nearest_limit)
    obstacles = _limit_obstacles(model, wanted, existing)
    slices = _slice_obstacle(model, wanted, existing)
    if slices is not None:
        obstacles.append(slices)
    if not obstacles:
        obstacles.append(_collision_obstacle(model, wanted, existing, nearest))
    where = f" beside {_describe(existing)}" if existing else ""
    message = f"cannot place {count_text(wanted)} on {model.name}{where}: " + "; ".join(
        o.message for o in obstacles
    )
    hint = (
        "nearest layouts that fit: " + " | ".join(n.describe() for n in nearest)
        if nearest
        else "nothing close fits; free instances on this GPU first"
    )
    return InfeasibleError(
        message,
        model_key=model.key,
        wanted=[p.name for p in wanted],
        obstacles=obstacles,
        nearest=nearest,
        hint=hint,
    )


def plan_gpu(
    model: GpuModel,
    wanted_profiles: Sequence[str | GiProfile],
    existing: Sequence[Occupant] = (),
) -> list[Occupant]:
    """Placements for every wanted profile beside ``existing``, sorted by placement.

    Exact: the search over the catalog's placements is exhaustive. Raises
    ``InfeasibleError`` (an ``InsufficientResourcesError``) saying why and listing the
    nearest layouts that fit; ``NotFoundError`` for an unknown profile name.
    """
    require_plannable(model)
    wanted = resolve_profiles(model, wanted_profiles)
    result = place(model, wanted, existing)
    if result is None:
        raise diagnose(model, wanted, existing)
    return sorted(result, key=lambda o: (o.placement.start, o.profile.name))
