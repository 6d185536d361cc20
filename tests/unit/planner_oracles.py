"""Independent checks for the planner tests: brute force and rule-by-rule legality.

Why this exists: the planner's searches are clever (ordering, memoisation, pruning); the
tests compare them with the dumbest correct thing (try every combination of placements)
and re-check every answer with ``migctl.geometry``'s rules, one instance at a time.
Imported only by tests/unit/test_planner_*.py.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

from migctl.catalog import Catalog, load_catalog
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GiProfile, GpuModel

MODEL_KEYS = ("h100-80gb-hbm3", "a100-sxm4-40gb", "a30-24gb", "rtx-pro-6000-server")


def catalog() -> Catalog:
    return load_catalog()


def models() -> list[GpuModel]:
    loaded = catalog()
    return [loaded.get(key) for key in MODEL_KEYS]


def legal(
    model: GpuModel, occupants: Sequence[Occupant], existing: Sequence[Occupant] = ()
) -> bool:
    """Every occupant can be created, one after the other, beside the ones before it."""
    current = list(existing)
    for occupant in occupants:
        if placement_refusal(model, occupant.profile, occupant.placement, current) is not None:
            return False
        current.append(occupant)
    return True


def brute_force_fits(
    model: GpuModel, wanted: Sequence[GiProfile], existing: Sequence[Occupant] = ()
) -> bool:
    """Try every combination of placements (only for a few instances)."""
    for combo in itertools.product(*(p.placements for p in wanted)):
        occupants = [Occupant(p, where) for p, where in zip(wanted, combo, strict=True)]
        if legal(model, occupants, existing):
            return True
    return False


def names(profiles: Iterable[GiProfile | Occupant]) -> Counter[str]:
    return Counter(p.profile.name if isinstance(p, Occupant) else p.name for p in profiles)
