"""Place a set of GPU instances on one GPU: exact search over the legal placements.

Why this exists: the driver places instances one at a time and fails on bad orders
(A100 ``-cgi 19,19,14,9``); mig-parted tries permutations until one works. migctl
decides every placement up front: given the instances already on the GPU and the
profiles wanted, it searches the placements (largest profiles first, each tried in the
order that keeps the most room for the rest) and returns a complete assignment or None.
The search is exhaustive, so None means no order of creation could succeed.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.geometry import Occupant, free_placements, occupied_mask
from migctl.model import GiProfile, GpuModel, Placement


def _order(profiles: Sequence[GiProfile]) -> list[GiProfile]:
    """Hardest to place first: most memory slices, then fewest placements, then name."""
    return sorted(
        profiles, key=lambda p: (-p.memory_slices, len(p.placements), -p.compute_slices, p.name)
    )


def _candidates(
    model: GpuModel, profile: GiProfile, current: Sequence[Occupant]
) -> list[Placement]:
    """Free placements, least damaging to the remaining room first, then lowest start."""
    free = free_placements(model, profile, current)
    if len(free) <= 1:
        return free
    taken = occupied_mask(current)
    room = [
        p.mask() for other in model.gi_profiles for p in other.placements if not p.mask() & taken
    ]
    return sorted(free, key=lambda c: (sum(1 for m in room if m & c.mask()), c.start))


def place(
    model: GpuModel,
    wanted: Sequence[GiProfile],
    existing: Sequence[Occupant] = (),
) -> list[Occupant] | None:
    """Placements for every profile in ``wanted`` beside ``existing``; None if impossible.

    The result lists the new instances in creation order (largest first); it never moves
    an existing instance. Deterministic: same input, same answer.
    """
    ordered = _order(wanted)
    chosen: list[Occupant] = []
    failed: set[tuple[int, tuple[str, ...]]] = set()

    def search(position: int, current: list[Occupant]) -> bool:
        if position == len(ordered):
            return True
        key = (occupied_mask(current), tuple(p.name for p in ordered[position:]))
        if key in failed:
            return False
        profile = ordered[position]
        for placement in _candidates(model, profile, current):
            occupant = Occupant(profile, placement)
            current.append(occupant)
            chosen.append(occupant)
            if search(position + 1, current):
                return True
            current.pop()
            chosen.pop()
        failed.add(key)
        return False

    return chosen if search(0, list(existing)) else None
