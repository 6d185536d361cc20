"""Compute instances inside one kept GPU instance: which to keep, destroy and create.

Why this exists: when a GI already has the right profile and placement, reconfiguration
should change only its compute instances, and only those that differ, never a busy one
unless forced. This module resolves the desired CI specs of a GI profile and searches,
exactly (every subset of the current CIs), for the CI change that destroys the fewest
(busy ones first avoided). Also home of ``matchings``, the small assignment enumerator
that ``planner.reconfigure`` shares. Imported only by ``planner.reconfigure``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from migctl.errors import InvalidInputError, NotSupportedError
from migctl.model import CiProfile, GiProfile, GpuModel, Placement
from migctl.planner.plan import CurrentCi, DesiredCi

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class CiSpec:
    """A wanted CI: its profile and, optionally, a fixed placement in compute slices."""

    profile: CiProfile
    placement: Placement | None = None


@dataclass(frozen=True, slots=True)
class CiPlan:
    kept: tuple[CurrentCi, ...]
    destroyed: tuple[CurrentCi, ...]
    created: tuple[tuple[CiProfile, Placement], ...]

    @property
    def busy_destroyed(self) -> int:
        return sum(1 for ci in self.destroyed if ci.busy)


def _resolve_ci_profile(model: GpuModel, gi: GiProfile, name: str) -> CiProfile:
    options = model.ci_profiles_for(gi.name)
    text = name.strip().lower()
    for profile in options:
        if profile.name == text:
            return profile
    short = re.fullmatch(r"(\d+)c", text)
    if short is not None:
        for profile in options:
            if profile.compute_slices == int(short.group(1)):
                return profile
    raise InvalidInputError(
        f"GPU instance profile {gi.name} of {model.name} has no compute instance profile {name!r}",
        hint="compute instance profiles: " + (", ".join(p.name for p in options) or "none known"),
        context={"model": model.key, "gi_profile": gi.name, "ci_profile": name},
    )


def default_ci(model: GpuModel, gi: GiProfile) -> CiProfile:
    """The CI spanning the whole GI (``nvidia-smi mig -lcip`` marks it ``*``)."""
    for profile in model.ci_profiles_for(gi.name):
        if profile.is_default:
            return profile
    raise NotSupportedError(
        f"the catalog lists no default compute instance for {gi.name} on {model.name}",
        hint="give the compute instances explicitly",
        context={"model": model.key, "gi_profile": gi.name},
    )


def resolve_ci_specs(
    model: GpuModel, gi: GiProfile, desired: Sequence[DesiredCi] | None
) -> tuple[CiSpec, ...]:
    """The CI specs of one desired GI; ``None`` means one default CI."""
    if desired is None:
        return (CiSpec(default_ci(model, gi)),)
    specs = []
    for item in desired:
        profile = _resolve_ci_profile(model, gi, item.profile)
        if item.placement is not None and item.placement not in profile.placements:
            legal = ", ".join(str(p) for p in profile.placements)
            raise InvalidInputError(
                f"{profile.name} cannot be placed at {item.placement} in a {gi.name} GI",
                hint=f"legal placements: {legal}",
                context={"ci_profile": profile.name, "placement": str(item.placement)},
            )
        specs.append(CiSpec(profile, item.placement))
    return tuple(specs)


def matchings(
    items: Sequence[T],
    classes: Sequence[tuple[K, int]],
    compatible: Callable[[T, K], bool],
) -> Iterator[list[int]]:
    """Every way to give each item a compatible class, within each class's multiplicity.

    Yields, per item, the index of its class. Interchangeable targets are grouped into
    classes, so identical wishes do not multiply the search.
    """
    left = [count for _, count in classes]
    chosen: list[int] = []

    def walk(position: int) -> Iterator[list[int]]:
        if position == len(items):
            yield list(chosen)
            return
        for index, (key, _) in enumerate(classes):
            if left[index] and compatible(items[position], key):
                left[index] -= 1
                chosen.append(index)
                yield from walk(position + 1)
                chosen.pop()
                left[index] += 1

    yield from walk(0)


def spec_classes(specs: Sequence[CiSpec]) -> list[tuple[CiSpec, int]]:
    counts: dict[CiSpec, int] = {}
    for spec in specs:
        counts[spec] = counts.get(spec, 0) + 1
    return sorted(counts.items(), key=lambda kv: _spec_order(kv[0]))


def _spec_order(spec: CiSpec) -> tuple[int, int, str, int]:
    start = -1 if spec.placement is None else spec.placement.start
    return (spec.placement is None, -spec.profile.compute_slices, spec.profile.name, start)


def _ci_fits(spec: CiSpec, ci: CurrentCi) -> bool:
    return spec.profile.name == ci.profile and spec.placement in (None, ci.placement)


def _place_new(
    specs: Sequence[CiSpec], kept: Sequence[CurrentCi]
) -> list[tuple[CiProfile, Placement]] | None:
    """Placements for the specs beside the kept CIs (fixed first, then largest first)."""
    taken = 0
    used: dict[str, int] = {}
    for ci in kept:
        taken |= ci.placement.mask()
        used[ci.profile] = used.get(ci.profile, 0) + 1
    ordered = sorted(specs, key=_spec_order)
    chosen: list[tuple[CiProfile, Placement]] = []

    def search(position: int, mask: int) -> bool:
        if position == len(ordered):
            return True
        spec = ordered[position]
        if used.get(spec.profile.name, 0) >= spec.profile.max_instances:
            return False
        options = [spec.placement] if spec.placement else list(spec.profile.placements)
        for placement in options:
            if placement.mask() & mask:
                continue
            used[spec.profile.name] = used.get(spec.profile.name, 0) + 1
            chosen.append((spec.profile, placement))
            if search(position + 1, mask | placement.mask()):
                return True
            chosen.pop()
            used[spec.profile.name] -= 1
        return False

    return chosen if search(0, taken) else None


def plan_cis(current: Sequence[CurrentCi], specs: Sequence[CiSpec], force: bool) -> CiPlan | None:
    """The CI change destroying the fewest (busy first); None if only a busy loss would do.

    Exact: every subset of the current CIs is tried as the kept set, best first.
    """
    classes = spec_classes(specs)
    ordered = sorted(current, key=lambda c: c.ci_id)
    subsets = sorted(
        itertools.product((True, False), repeat=len(ordered)),
        key=lambda keep: (
            sum(1 for k, c in zip(keep, ordered, strict=True) if not k and c.busy),
            keep.count(False),
        ),
    )
    for keep in subsets:
        kept = [c for k, c in zip(keep, ordered, strict=True) if k]
        destroyed = tuple(c for k, c in zip(keep, ordered, strict=True) if not k)
        if not force and any(c.busy for c in destroyed):
            continue
        for match in matchings(kept, classes, lambda ci, spec: _ci_fits(spec, ci)):
            remaining = _remaining(classes, match)
            created = _place_new(remaining, kept)
            if created is not None:
                created.sort(key=lambda pair: pair[1].start)
                return CiPlan(tuple(kept), destroyed, tuple(created))
    return None


def _remaining(classes: Sequence[tuple[CiSpec, int]], match: Sequence[int]) -> list[CiSpec]:
    left = [count for _, count in classes]
    for index in match:
        left[index] -= 1
    return [spec for (spec, _), count in zip(classes, left, strict=True) for _ in range(count)]
