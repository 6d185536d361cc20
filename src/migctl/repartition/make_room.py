"""Make room: the fewest idle GPU instances to destroy on one GPU so new ones fit beside the rest.

Why this exists: reshaping must keep every busy or recently used instance where it is and
destroy as few idle ones as possible. For one GPU, given the instances that must stay
(``fixed``), those that may go (``eligible``) and the profiles wanted, the search tries
destroy sets in increasing size (then fewest memory slices, then lowest GI ids) and asks the
planner's exact ``place`` whether the wanted profiles fit beside what is left. A GPU has at
most a handful of instances, so the search is exact; ``place`` results are cached because a
replay asks the same questions many times.

Pure; imported by ``migctl.repartition.decide``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner import place
from migctl.planner.profiles import resolve_profile

SlotKey = tuple[str, int, int]  # (profile name, start, size)


@dataclass(frozen=True, slots=True)
class Slot:
    """A GPU instance as the fit search sees it."""

    gi_id: int
    profile: GiProfile
    placement: Placement

    @property
    def key(self) -> SlotKey:
        return (self.profile.name, self.placement.start, self.placement.size)


_MODELS: dict[int, GpuModel] = {}  # id -> model, kept alive so that ids are never reused


def model_token(model: GpuModel) -> int:
    """A cheap cache key for a model (hashing a ``GpuModel`` walks every profile)."""
    if _MODELS.get(id(model)) is not model:
        _MODELS[id(model)] = model
    return id(model)


def model_of(token: int) -> GpuModel:
    return _MODELS[token]


def profile_named(model: GpuModel, name: str) -> GiProfile:
    """``resolve_profile`` with a cache (NotFoundError for an unknown name)."""
    return _profile_named(model_token(model), name)


@lru_cache(maxsize=4096)
def _profile_named(token: int, name: str) -> GiProfile:
    return resolve_profile(_MODELS[token], name)


def placed(
    model: GpuModel, kept: Sequence[Slot], wanted: Sequence[GiProfile]
) -> tuple[tuple[str, Placement], ...] | None:
    """Placements for ``wanted`` beside ``kept`` (by start), or None when they do not fit."""
    kept_keys = tuple(sorted(slot.key for slot in kept))
    names = tuple(sorted(p.name for p in wanted))
    return _placed(model_token(model), kept_keys, names)


@lru_cache(maxsize=1 << 16)
def _placed(
    token: int, kept: tuple[SlotKey, ...], names: tuple[str, ...]
) -> tuple[tuple[str, Placement], ...] | None:
    model = _MODELS[token]
    occupants = [Occupant(_profile_named(token, n), Placement(s, z)) for n, s, z in kept]
    result = place(model, [_profile_named(token, n) for n in names], occupants)
    if result is None:
        return None
    ordered = sorted(result, key=lambda o: (o.placement.start, o.profile.name))
    return tuple((o.profile.name, o.placement) for o in ordered)


def _room_for(model: GpuModel, kept: Sequence[Slot], wanted: Sequence[GiProfile]) -> bool:
    """Cheap necessary condition: enough free memory slices and instance count."""
    total = model.memory_slices or 0
    used = sum(slot.placement.size for slot in kept)
    if used + sum(p.memory_slices for p in wanted) > total:
        return False
    limit = model.max_gpu_instances
    return limit is None or len(kept) + len(wanted) <= limit


def minimal_destroy(
    model: GpuModel,
    fixed: Sequence[Slot],
    eligible: Sequence[Slot],
    wanted: Sequence[GiProfile],
) -> tuple[Slot, ...] | None:
    """The fewest ``eligible`` instances to destroy so that ``wanted`` fits; None if none do.

    Among destroy sets of the smallest size: fewest memory slices destroyed, then the lowest
    GI ids. Deterministic.
    """
    pool = sorted(eligible, key=lambda s: s.gi_id)
    if placed(model, fixed, wanted) is None:  # not even with every eligible instance gone
        return None
    for count in range(len(pool) + 1):
        best: tuple[Slot, ...] | None = None
        for gone in itertools.combinations(pool, count):
            gone_ids = {s.gi_id for s in gone}
            kept = [*fixed, *(s for s in pool if s.gi_id not in gone_ids)]
            if not _room_for(model, kept, wanted) or placed(model, kept, wanted) is None:
                continue
            if best is None or _destroy_cost(gone) < _destroy_cost(best):
                best = gone
        if best is not None:
            return best
    return None  # unreachable: the full destroy set fits


def _destroy_cost(gone: Sequence[Slot]) -> tuple[int, tuple[int, ...]]:
    return (sum(s.placement.size for s in gone), tuple(s.gi_id for s in gone))
