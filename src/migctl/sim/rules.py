"""How the simulated driver decides: auto-placement, compute-instance rules, occupants.

Why this exists: the placement rules themselves are shared (``migctl.geometry``); what is
the driver's own behaviour lives here. NVIDIA does not document where
``CreateGpuInstance`` without a placement puts an instance. The policy modelled here —
take the free placement that removes the fewest placements still possible for any
profile, lowest start on ties — reproduces every published observation
(``reference/mig-geometry.md`` §2): A100 ``-cgi 19,19,14,9`` fails on the 3g while
``-cgi 9,19,14,19`` succeeds; ``-cgi 14,19x5`` puts the 2g at 4:2 and the first 1g at
6:1; two 3g put the first at 4:4; RTX PRO 6000 ``2g,1g,1g`` gives 0:6, 6:3, 9:3.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.geometry import Occupant, free_placements, occupied_mask
from migctl.model import CiProfile, GiProfile, GpuModel, Placement
from migctl.sim.state import SimComputeInstance, SimGpu, SimGpuInstance


def occupants(model: GpuModel, gpu: SimGpu) -> list[Occupant]:
    result = []
    for gi in gpu.gis:
        profile = model.gi_profile(gi.profile_id)
        if profile is not None:
            result.append(Occupant(profile, gi.placement))
    return result


def _still_possible(model: GpuModel, current: Sequence[Occupant]) -> list[Placement]:
    """Every placement, over all profiles, that could still be created."""
    possible: list[Placement] = []
    for profile in model.gi_profiles:
        possible.extend(free_placements(model, profile, current))
    return possible


def auto_placement(
    model: GpuModel, profile: GiProfile, current: Sequence[Occupant]
) -> Placement | None:
    """Where the driver would put ``profile`` when no placement is given; None: no room."""
    candidates = free_placements(model, profile, current)
    if not candidates:
        return None
    possible = _still_possible(model, current)

    def damage(candidate: Placement) -> tuple[int, int]:
        mask = candidate.mask()
        return (sum(1 for p in possible if p.mask() & mask), candidate.start)

    return min(candidates, key=damage)


def lowest_free_id(used: set[int], first: int = 0) -> int:
    candidate = first
    while candidate in used:
        candidate += 1
    return candidate


# Compute instances --------------------------------------------------------------------


def ci_profile_by_id(
    model: GpuModel, gi_profile: GiProfile, ci_profile_id: int
) -> CiProfile | None:
    return next(
        (c for c in model.ci_profiles_for(gi_profile.name) if c.nvml_index == ci_profile_id),
        None,
    )


def ci_profile_by_index(
    model: GpuModel, gi_profile: GiProfile, nvml_index: int
) -> CiProfile | None:
    """CI profile lookup as NVML does it: by NVML_COMPUTE_INSTANCE_PROFILE_* index."""
    return ci_profile_by_id(model, gi_profile, nvml_index)


def ci_refusal(
    model: GpuModel,
    gi_profile: GiProfile,
    gi: SimGpuInstance,
    ci_profile: CiProfile,
    placement: Placement,
) -> str | None:
    """Why a CI of ``ci_profile`` cannot be created at ``placement`` inside ``gi``."""
    if placement not in ci_profile.placements:
        return f"{ci_profile.name} cannot start at compute slice {placement.start}"
    same = sum(1 for c in gi.cis if c.profile_id == ci_profile.nvml_index)
    if same >= ci_profile.max_instances:
        return f"{ci_profile.name} allows at most {ci_profile.max_instances} per GPU instance"
    taken = occupied_mask(Occupant(gi_profile, c.placement) for c in gi.cis)
    if taken & placement.mask():
        return f"compute slices {placement} of GPU instance {gi.id} are taken"
    return None


def ci_free_placements(
    model: GpuModel, gi_profile: GiProfile, gi: SimGpuInstance, ci_profile: CiProfile
) -> list[Placement]:
    return [
        p for p in ci_profile.placements if ci_refusal(model, gi_profile, gi, ci_profile, p) is None
    ]


def ci_remaining_capacity(
    model: GpuModel, gi_profile: GiProfile, gi: SimGpuInstance, ci_profile: CiProfile
) -> int:
    same = sum(1 for c in gi.cis if c.profile_id == ci_profile.nvml_index)
    taken = 0
    for ci in gi.cis:
        taken |= ci.placement.mask()
    count = 0
    for placement in ci_profile.placements:
        if count >= ci_profile.max_instances - same:
            break
        if not placement.mask() & taken:
            taken |= placement.mask()
            count += 1
    return count


def new_ci(
    gi: SimGpuInstance, ci_profile: CiProfile, placement: Placement, uuid: str
) -> SimComputeInstance:
    ci_id = lowest_free_id({c.id for c in gi.cis})
    ci = SimComputeInstance(ci_id, ci_profile.nvml_index, placement.start, placement.size, uuid)
    gi.cis.append(ci)
    gi.cis.sort(key=lambda c: c.id)
    return ci
