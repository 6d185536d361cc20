"""Layout patterns of one GPU model: every maximal multiset of profiles that fits on it.

Why this exists: packing many GPUs is a choice of *how many GPUs use each pattern*, which
keeps the optimisation's size independent of the number of GPUs. Any feasible GPU layout
is a subset of some maximal pattern, so maximal patterns are enough for an exact model.
Feasibility is decided by the exhaustive placement search. Imported by the packing modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.model import GiProfile, GpuModel
from migctl.planner.placement import place
from migctl.planner.profiles import size_key

Names = tuple[str, ...]


@dataclass
class FitCache:
    """Memoised "does this sorted multiset of profile names fit on an empty GPU"."""

    model: GpuModel
    known: dict[Names, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {p.name: p for p in self.model.gi_profiles}

    def fits(self, names: Names) -> bool:
        key = tuple(sorted(names))
        if key not in self.known:
            self.known[key] = self._check(key)
        return self.known[key]

    def _check(self, names: Names) -> bool:
        limit = self.model.max_gpu_instances
        if limit is not None and len(names) > limit:
            return False
        profiles = [self.by_name[n] for n in names]
        if sum(p.memory_slices for p in profiles) > (self.model.memory_slices or 0):
            return False
        return place(self.model, profiles) is not None


def maximal_patterns(cache: FitCache, profiles: Sequence[GiProfile]) -> list[Names]:
    """Maximal feasible multisets over ``profiles`` (sorted names), largest first."""
    ordered = sorted(set(profiles), key=size_key, reverse=True)
    feasible: list[Names] = []

    def extend(start: int, chosen: list[str]) -> None:
        grew = False
        for index in range(start, len(ordered)):
            trial = [*chosen, ordered[index].name]
            if cache.fits(tuple(trial)):
                grew = True
                extend(index, trial)
        if not grew:
            feasible.append(tuple(sorted(chosen)))

    extend(0, [])
    names = [p.name for p in ordered]
    maximal = {
        pattern
        for pattern in feasible
        if pattern and not any(cache.fits((*pattern, n)) for n in names)
    }
    return sorted(maximal, key=lambda p: (-len(p), p))
