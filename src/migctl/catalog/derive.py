"""Compute-instance profiles of a GI profile, derived from the A100 pattern.

Why this exists: NVIDIA publishes compute-instance (CI) profile tables for few GPUs, and
NVML can only list them while a GPU instance exists. A GI of C compute slices offers CIs
of 1, 2, 3, 4 and 7 slices where they fit (A100's dgxa100 tables: a 4g GI has 1c/2c/4c, a
7g GI 1c x7, 2c x3, 3c x2, 4c x1, 7c x1). Every profile made here is marked ``derived``
so that no one mistakes it for a published fact; published rows replace derived ones.
"""

from __future__ import annotations

from migctl.model import CiProfile, GiProfile, Placement

CI_INDEX_BY_SIZE = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}
CI_REV1_INDEX = 7  # what H100 and GH200 report for the full CI of a REV2 ("1g, 2x memory") GI
_SIZES = {1: (1,), 2: (1, 2), 3: (1, 2, 3), 4: (1, 2, 4), 7: (1, 2, 3, 4, 7)}
_COUNT_OVERRIDE = {(7, 3): 2, (7, 4): 1, (3, 2): 1}
DERIVED_SOURCE = "derived from the A100 compute-instance pattern (dgxa100); not published"


def derive_ci_profiles(gi: GiProfile, architecture: str | None) -> tuple[CiProfile, ...]:
    size = gi.compute_slices
    rev2 = size == 1 and gi.memory_slices == 2
    ampere = (architecture or "").lower().startswith("ampere")
    result = []
    for ci_size in _SIZES.get(size, (size,)):
        count = _COUNT_OVERRIDE.get((size, ci_size), size // ci_size)
        full = ci_size == size
        index = CI_INDEX_BY_SIZE.get(ci_size, 0)
        if full and rev2 and not ampere:
            index = CI_REV1_INDEX
        sm = None
        if gi.sm_count is not None:
            sm = gi.sm_count if full else gi.sm_count * ci_size // size
        result.append(
            CiProfile(
                gi_profile=gi.name,
                name=gi.name if full else f"{ci_size}c.{gi.name}",
                nvml_index=index,
                compute_slices=ci_size,
                sm_count=sm,
                max_instances=count,
                placements=tuple(Placement(k * ci_size, ci_size) for k in range(count)),
                is_default=full,
                derived=True,
                source=DERIVED_SOURCE,
            )
        )
    return tuple(result)
