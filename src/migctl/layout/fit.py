"""Can a set of compute instances share one GPU instance? Exact search over CI placements.

Why this exists: a layout may ask for several CIs inside a GI (``compute: [2c.4g.40gb,
1c.4g.40gb, 1c.4g.40gb]``); whether they fit depends on their placements inside the GI
(compute slices), exactly as the simulator checks them, not only on their sizes. GI
placement is :func:`migctl.planner.placement.place`'s job; this is the CI counterpart
(a candidate for the planner later). Pure; used by resolve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from migctl.model import CiProfile


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


def cis_fit(wanted: Sequence[CiProfile], gi_compute_slices: int) -> bool:
    """Whether every CI in ``wanted`` can be placed inside one GI at the same time.

    Uses the catalog's CI placements when every profile has them (exact backtracking,
    biggest first); otherwise only the compute slice total can be checked.
    """
    if ci_count_refusal(wanted) is not None:
        return False
    if sum(ci.compute_slices for ci in wanted) > gi_compute_slices:
        return False
    if not all(ci.placements for ci in wanted):
        return True
    ordered = sorted(wanted, key=lambda ci: (-ci.compute_slices, len(ci.placements), ci.name))

    def search(position: int, taken: int) -> bool:
        if position == len(ordered):
            return True
        for placement in ordered[position].placements:
            mask = placement.mask()
            if not mask & taken and search(position + 1, taken | mask):
                return True
        return False

    return search(0, 0)
