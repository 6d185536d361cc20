"""Can the GPU instances one layout entry asks for exist together on a GPU model?

Why this exists: a layout is only accepted when every GPU it selects could hold it: counts
within the model's limits (checked *before* a count is expanded into instances, since a
count comes from a file or a request body and may be a billion), legal fixed placements
that do not collide, ``+me.all`` exclusivity, and a proof
(:func:`migctl.planner.placement.place`) that all instances fit together. Every refusal is
an InvalidInputError naming the file, line and key path. Pure; used by
:mod:`migctl.layout.resolve`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.geometry import Occupant, fits_instead, placement_refusal
from migctl.layout.problems import join
from migctl.layout.types import InstanceRule, Layout, LayoutRule
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner.placement import place


@dataclass(frozen=True, slots=True)
class Item:
    """One wanted GI while it is being checked: where it came from and what it is."""

    rule: InstanceRule
    profile: GiProfile
    start_slice: int | None
    compute: tuple[str, ...]


def gpu_instance_limit(model: GpuModel) -> int:
    """The most GPU instances one GPU of ``model`` holds (its memory slices if unknown)."""
    return (
        model.max_gpu_instances
        or model.memory_slices
        or max((p.max_instances for p in model.gi_profiles), default=0)
    )


def check_count(
    layout: Layout, inst: InstanceRule, model: GpuModel, what: str, most: int, *, why: str = ""
) -> None:
    """Refuse ``inst.count`` above ``most`` (what one GPU of ``model`` holds) before use."""
    if inst.count > most:
        raise layout.error(
            inst.profile_path,
            f"{inst.count} x {what} asked, {model.name} allows at most {most} per GPU{why}",
            f"ask for at most {most} x {what}",
        )


def check_total(layout: Layout, rule: LayoutRule, model: GpuModel, asked: int) -> None:
    """Refuse more GPU instances in one entry than one GPU of ``model`` holds."""
    limit = gpu_instance_limit(model)
    if asked > limit:
        raise layout.error(
            rule.instances_path,
            f"{asked} GPU instances asked, {model.name} allows at most {limit}",
            "ask for fewer instances",
        )


def _check_counts(layout: Layout, rule: LayoutRule, model: GpuModel, items: list[Item]) -> None:
    counts = Counter(item.profile.name for item in items)
    for item in items:
        profile = item.profile
        if counts[profile.name] > profile.max_instances:
            raise layout.error(
                item.rule.profile_path,
                f"{counts[profile.name]} x {profile.name} asked, {model.name} allows at most "
                f"{profile.max_instances} per GPU",
                f"ask for at most {profile.max_instances} x {profile.name}",
            )
    check_total(layout, rule, model, len(items))


def _media_conflict(items: Sequence[Item]) -> str | None:
    holders = [i.profile.name for i in items if i.profile.is_all_media]
    others = [i.profile.name for i in items if not i.profile.is_no_media]
    if holders and len(others) > 1:
        return f"{holders[0]} takes every media engine: only -me profiles may be beside it"
    return None


def _fixed_occupants(layout: Layout, model: GpuModel, items: Sequence[Item]) -> list[Occupant]:
    fixed: list[Occupant] = []
    for item in items:
        if item.start_slice is None:
            continue
        placement = Placement(item.start_slice, item.profile.memory_slices)
        reason = placement_refusal(model, item.profile, placement, fixed)
        if reason is not None:
            raise layout.error(
                join(item.rule.key_path, "placement"),
                f"{item.profile.name} at {placement}: {reason}",
                "give the fixed instances placements that do not overlap",
            )
        fixed.append(Occupant(item.profile, placement))
    return fixed


def check_fit(
    layout: Layout, rule: LayoutRule, model: GpuModel, where: str, items: list[Item]
) -> None:
    """Refuse ``items`` unless they can all be created on one empty GPU of ``model``."""
    if not items:
        return
    _check_counts(layout, rule, model, items)
    conflict = _media_conflict(items)
    if conflict is not None:
        raise layout.error(rule.instances_path, conflict, "drop the +me.all instance or the others")
    fixed = _fixed_occupants(layout, model, items)
    free = [item.profile for item in items if item.start_slice is None]
    if place(model, free, fixed) is not None:
        return
    needed = sum(item.profile.memory_slices for item in items)
    total = model.memory_slices or 0
    why = (
        f"they need {needed} memory slices, the GPU has {total}"
        if needed > total
        else "no arrangement of their legal placements fits"
    )
    room = fits_instead(model, fixed)
    raise layout.error(
        rule.instances_path,
        f"these instances cannot all be created on {where} ({model.name}): {why}",
        "remove or shrink instances"
        + (f"; what still fits beside the fixed ones: {', '.join(room)}" if fixed and room else ""),
    )
