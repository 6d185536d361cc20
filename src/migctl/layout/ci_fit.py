"""Can a set of compute instances share one GPU instance? Exact search over CI placements.

Why this exists: a layout may ask for several CIs inside a GI (``compute: [2c.4g.40gb,
1c.4g.40gb, 1c.4g.40gb]``); whether they fit depends on their placements inside the GI
(compute slices), exactly as the simulator checks them, not only on their sizes. GI
placement is :func:`migctl.planner.placement.place`'s job; this is the CI counterpart
(a candidate for the planner later). Not to be confused with ``repartition.make_room`` (which
GPU instances to destroy). Pure; used by resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from migctl.model import CiProfile, Placement


def ci_count_refusal(wanted: Sequence[CiProfile]) -> str | None:
    """Why the CI counts are impossible (a profile's max per GI); None when they are not."""
    counts = Counter(ci.name for ci in wanted)
    for ci in wanted:
        if counts[ci.name] > ci.max_instances:
            return (
                f"{counts[ci.name]} x {ci.name} asked, at most {ci.max_instances} fit in one "
                f"{ci.gi_profile}"
            )
    return None


def place_cis(
    wanted: Sequence[CiProfile], gi_compute_slices: int
) -> list[tuple[CiProfile, Placement | None]] | None:
    """A placement inside one GI for every CI in ``wanted`` (biggest first); None if none.

    Exact backtracking over the catalog's CI placements. When some profile's placements
    are unknown, only the compute slice total is checked and placements come back None.
    """
    if ci_count_refusal(wanted) is not None:
        return None
    if sum(ci.compute_slices for ci in wanted) > gi_compute_slices:
        return None
    ordered = sorted(wanted, key=lambda ci: (-ci.compute_slices, len(ci.placements), ci.name))
    if not all(ci.placements for ci in wanted):
        return [(ci, None) for ci in ordered]
    chosen: list[tuple[CiProfile, Placement | None]] = []

    def search(position: int, taken: int) -> bool:
        if position == len(ordered):
            return True
        for placement in ordered[position].placements:
            mask = placement.mask()
            if mask & taken:
                continue
            chosen.append((ordered[position], placement))
            if search(position + 1, taken | mask):
                return True
            chosen.pop()
        return False

    return chosen if search(0, 0) else None


def cis_fit(wanted: Sequence[CiProfile], gi_compute_slices: int) -> bool:
    """Whether every CI in ``wanted`` can be placed inside one GI at the same time."""
    return place_cis(wanted, gi_compute_slices) is not None
