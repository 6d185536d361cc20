"""The layouts closest to an infeasible wish that do fit: drop the fewest, or shrink one.

Why this exists: "does not fit" is only half an answer; users need "what would". Given
the wanted profiles (and the instances already on the GPU), this lists, deterministically,
the layouts that fit after (a) replacing one instance by the next smaller profile of its
kind or (b) dropping the fewest instances, keeping the most memory. Exact: every candidate
is checked with the exhaustive placement search. Imported by ``planner.feasibility``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from migctl.geometry import Occupant, occupied_mask
from migctl.model import GiProfile, GpuModel
from migctl.planner.placement import place
from migctl.planner.profiles import count_text, is_variant, size_key


@dataclass(frozen=True, slots=True)
class NearestLayout:
    """A layout that fits, and how it differs from what was wanted."""

    occupants: tuple[Occupant, ...]  # the new instances with placements, by placement
    dropped: tuple[str, ...]  # profile names left out
    replaced: tuple[tuple[str, str], ...]  # (wanted profile, smaller profile used instead)

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(o.profile.name for o in self.occupants)

    @property
    def change(self) -> str:
        """``"drop 1x 1g.10gb"`` or ``"replace 4g.40gb by 3g.40gb"``."""
        parts = [f"replace {old} by {new}" for old, new in self.replaced]
        if self.dropped:
            parts.append(f"drop {count_text(self.dropped)}")
        return ", ".join(parts)

    def describe(self) -> str:
        layout = ", ".join(f"{o.profile.name} at {o.placement}" for o in self.occupants)
        return f"{self.change}: {layout or 'nothing'}"

    def to_dict(self) -> dict[str, object]:
        return {
            "change": self.change,
            "profiles": list(self.profiles),
            "placements": [str(o.placement) for o in self.occupants],
            "dropped": list(self.dropped),
            "replaced": [list(pair) for pair in self.replaced],
        }


def next_smaller(model: GpuModel, profile: GiProfile) -> GiProfile | None:
    """The largest profile of the same kind (plain, or the same variant suffix) below it."""
    suffix = _variant_suffix(profile)
    smaller = [
        p
        for p in model.gi_profiles
        if _variant_suffix(p) == suffix
        and is_variant(p) == is_variant(profile)
        and size_key(p) < size_key(profile)
        and (p.memory_slices, p.compute_slices) != (profile.memory_slices, profile.compute_slices)
    ]
    return max(smaller, key=size_key, default=None)


def _variant_suffix(profile: GiProfile) -> str:
    rest = profile.name.split(".", 1)[-1]
    for mark in ("+", "-"):
        if mark in rest:
            return rest[rest.index(mark) :]
    return ""


def _placed(
    model: GpuModel, profiles: Sequence[GiProfile], existing: Sequence[Occupant]
) -> tuple[Occupant, ...] | None:
    result = place(model, profiles, existing)
    if result is None:
        return None
    return tuple(sorted(result, key=lambda o: (o.placement.start, o.profile.name)))


def _replacements(
    model: GpuModel, wanted: Sequence[GiProfile], existing: Sequence[Occupant]
) -> Iterator[NearestLayout]:
    seen: set[str] = set()
    for index, profile in enumerate(wanted):
        smaller = next_smaller(model, profile)
        if profile.name in seen or smaller is None:
            continue
        seen.add(profile.name)
        trial = [*wanted[:index], smaller, *wanted[index + 1 :]]
        placed = _placed(model, trial, existing)
        if placed is not None:
            yield NearestLayout(placed, (), ((profile.name, smaller.name),))


def _quick_reject(model: GpuModel, kept: Sequence[GiProfile], existing: Sequence[Occupant]) -> bool:
    """Necessary conditions (counts, slices) that spare most exhaustive searches."""
    limit = model.max_gpu_instances
    if limit is not None and len(kept) + len(existing) > limit:
        return True
    free = (model.memory_slices or 0) - bin(occupied_mask(existing)).count("1")
    return sum(p.memory_slices for p in kept) > free


def _sub_multisets(wanted: Sequence[GiProfile], size: int) -> Iterator[list[GiProfile]]:
    """Every distinct sub-multiset of ``wanted`` with ``size`` members, largest kept first."""
    by_name = {p.name: p for p in wanted}
    counts = Counter(p.name for p in wanted)
    names = sorted(counts, key=lambda n: size_key(by_name[n]), reverse=True)
    for choice in itertools.product(*(range(counts[n], -1, -1) for n in names)):
        if sum(choice) == size:
            yield [by_name[n] for n, k in zip(names, choice, strict=True) for _ in range(k)]


def _drops(
    model: GpuModel, wanted: Sequence[GiProfile], existing: Sequence[Occupant], limit: int
) -> list[NearestLayout]:
    """Layouts that leave out the fewest instances; among them, keep the most memory."""
    total = len(wanted)
    free_gis = total if model.max_gpu_instances is None else model.max_gpu_instances
    start = max(1, total - max(free_gis - len(existing), 0))
    for dropped_count in range(start, total + 1):
        found: list[NearestLayout] = []
        for kept in _sub_multisets(wanted, total - dropped_count):
            if _quick_reject(model, kept, existing):
                continue
            placed = _placed(model, kept, existing)
            if placed is None:
                continue
            left = Counter(p.name for p in wanted) - Counter(p.name for p in kept)
            found.append(NearestLayout(placed, tuple(sorted(left.elements())), ()))
        if found:
            found.sort(key=_loss_key(wanted))
            return found[:limit]
    return []


_LossKey = Callable[[NearestLayout], tuple[int, int, int, tuple[str, ...]]]


def _loss_key(wanted: Sequence[GiProfile]) -> _LossKey:
    wanted_slices = sum(p.memory_slices for p in wanted)
    wanted_compute = sum(p.compute_slices for p in wanted)

    def key(layout: NearestLayout) -> tuple[int, int, int, tuple[str, ...]]:
        memory = sum(o.profile.memory_slices for o in layout.occupants)
        compute = sum(o.profile.compute_slices for o in layout.occupants)
        lost = len(layout.dropped)
        return (lost, wanted_slices - memory, wanted_compute - compute, layout.profiles)

    return key


def nearest_layouts(
    model: GpuModel,
    wanted: Sequence[GiProfile],
    existing: Sequence[Occupant] = (),
    limit: int = 5,
) -> list[NearestLayout]:
    """Up to ``limit`` fitting layouts nearest to ``wanted``: shrink one, else drop fewest."""
    found = list(_replacements(model, wanted, existing))
    found.extend(_drops(model, wanted, existing, limit))
    found.sort(key=_loss_key(wanted))
    unique: dict[tuple[tuple[str, ...], tuple[str, ...]], NearestLayout] = {}
    for layout in found:
        where = tuple(str(o.placement) for o in layout.occupants)
        unique.setdefault((layout.profiles, where), layout)
    return list(unique.values())[:limit]
