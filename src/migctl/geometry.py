"""Pure MIG placement rules for one GPU: what may be created where, and what is left.

Why this exists: the simulator (to refuse what the hardware refuses), the planner (to
search layouts) and error messages (to say what fits instead) all need the same rules,
and they must not drift apart. Everything here is a pure function of a ``GpuModel`` and
the instances already on the GPU; no I/O, no NVML. Layer: beside ``model``.

The rules (``reference/mig-geometry.md`` §1-§2):

* a GI profile may only start at one of its placements;
* occupied memory slices may not overlap;
* at most ``max_instances`` GIs of one profile (so one ``+me`` per GPU), and at most
  ``max_gpu_instances`` GIs in all;
* a ``+me.all`` instance allows only ``-me`` profiles beside it, and vice versa.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from migctl.model import GiProfile, GpuModel, Placement


@dataclass(frozen=True, slots=True)
class Occupant:
    """An existing GI, as far as the rules care."""

    profile: GiProfile
    placement: Placement


def occupied_mask(occupants: Iterable[Occupant]) -> int:
    mask = 0
    for occupant in occupants:
        mask |= occupant.placement.mask()
    return mask


def _media_conflict(profile: GiProfile, occupants: Sequence[Occupant]) -> str | None:
    if profile.is_all_media and any(not o.profile.is_no_media for o in occupants):
        return f"{profile.name} takes every media engine: only -me profiles may be beside it"
    holder = next((o for o in occupants if o.profile.is_all_media), None)
    if holder is not None and not profile.is_no_media:
        return (
            f"{holder.profile.name} at {holder.placement} holds every media engine: "
            "only -me profiles may be created beside it"
        )
    return None


def count_refusal(model: GpuModel, profile: GiProfile, occupants: Sequence[Occupant]) -> str | None:
    """Why no more instances of ``profile`` may exist, ignoring placement; None if they may."""
    same = sum(1 for o in occupants if o.profile.name == profile.name)
    if same >= profile.max_instances:
        return f"{profile.name} allows at most {profile.max_instances} per GPU ({same} exist)"
    limit = model.max_gpu_instances
    if limit is not None and len(occupants) >= limit:
        return f"{model.name} allows at most {limit} GPU instances ({len(occupants)} exist)"
    return _media_conflict(profile, occupants)


def placement_refusal(
    model: GpuModel,
    profile: GiProfile,
    placement: Placement,
    occupants: Sequence[Occupant],
) -> str | None:
    """Why ``profile`` cannot be created at ``placement`` now; None if it can."""
    if placement not in profile.placements:
        legal = ",".join(str(p.start) for p in profile.placements)
        legal_text = f"{{{legal}}}:{profile.memory_slices}"
        return f"{profile.name} cannot start at {placement} (legal: {legal_text})"
    reason = count_refusal(model, profile, occupants)
    if reason is not None:
        return reason
    blockers = [o for o in occupants if o.placement.overlaps(placement)]
    if blockers:
        held = ", ".join(f"{o.profile.name} at {o.placement}" for o in blockers)
        return f"memory slices {placement} overlap {held}"
    return None


def free_placements(
    model: GpuModel, profile: GiProfile, occupants: Sequence[Occupant]
) -> list[Placement]:
    """Placements where ``profile`` could be created right now, lowest start first."""
    if count_refusal(model, profile, occupants) is not None:
        return []
    taken = occupied_mask(occupants)
    return [p for p in profile.placements if not p.mask() & taken]


def remaining_capacity(model: GpuModel, profile: GiProfile, occupants: Sequence[Occupant]) -> int:
    """How many more ``profile`` instances fit (what NVML's remaining capacity reports).

    The placements of one profile have one size, so taking free ones lowest-first packs
    the most; the count is then capped by the profile and GPU instance limits.
    """
    if _media_conflict(profile, occupants) is not None:
        return 0
    same = sum(1 for o in occupants if o.profile.name == profile.name)
    cap = profile.max_instances - same
    if model.max_gpu_instances is not None:
        cap = min(cap, model.max_gpu_instances - len(occupants))
    taken = occupied_mask(occupants)
    count = 0
    for placement in profile.placements:
        if count >= cap:
            break
        if not placement.mask() & taken:
            taken |= placement.mask()
            count += 1
    return max(count, 0)


def gi_id_for(model: GpuModel, placement: Placement) -> int:
    """The GI id the driver gives an instance at ``placement``: its slot in a binary tree.

    Whole GPU 0; halves 1-2; quarters 3-6; eighths 7-14 (A100 examples: 1g ids 7-13 for
    starts 0-6, 2g ids 3/4/5 for starts 0/2/4; RTX PRO 6000: 2g at 0 is 1, 1g at 0/3/6/9
    are 3/4/5/6). Published transcripts disagree on which half 3g/4g ids 1 and 2 denote;
    this takes natural order (start 0 is 1).
    """
    total = model.memory_slices or 8
    parts = max(1, total // placement.size)
    return (parts - 1) + placement.start // placement.size


def fits_instead(model: GpuModel, occupants: Sequence[Occupant], limit: int = 4) -> list[str]:
    """Largest profiles first, ``"3g.40gb at 4"`` for what can still be created."""
    options: list[str] = []
    ordered = sorted(model.gi_profiles, key=lambda p: (-p.memory_slices, -p.compute_slices, p.name))
    for profile in ordered:
        free = free_placements(model, profile, occupants)
        if free:
            starts = "/".join(str(p.start) for p in free)
            options.append(f"{profile.name} at {starts}")
        if len(options) >= limit:
            break
    return options


def slice_owners(total_slices: int, occupants: Iterable[tuple[str, Placement]]) -> list[str | None]:
    """For drawing: the label holding each memory slice, or None when free."""
    owners: list[str | None] = [None] * total_slices
    for label, placement in occupants:
        for index in range(placement.start, min(placement.end, total_slices)):
            owners[index] = label
    return owners
