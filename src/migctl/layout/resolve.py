"""Resolve a layout against a machine: one exact, verified GpuLayout per selected GPU.

Why this exists: a layout file speaks of selectors and profile counts; apply and assert
need, for each GPU, the MIG mode and the instances it must hold, checked against that
GPU's model: known GI and CI profiles, legal fixed placements, counts within limits, and a
proof (:func:`migctl.planner.placement.place`) that all instances fit together.

Precedence: rules apply in file order and a later rule replaces an earlier one for every
GPU it selects (as mig-parted applies its entries). GPUs no rule selects are absent from
the result (not managed). Only the rule that wins for a GPU is checked against it.
Pure: no hardware; imports model, geometry, planner.placement and the layout types.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from migctl.errors import NotSupportedError
from migctl.geometry import Occupant, fits_instead, placement_refusal
from migctl.layout import profiles
from migctl.layout.fit import ci_count_refusal, cis_fit
from migctl.layout.problems import join
from migctl.layout.types import (
    GpuLayout,
    InstanceRule,
    Layout,
    LayoutRule,
    MachineGpu,
    WantedInstance,
)
from migctl.model import CiProfile, GiProfile, GpuModel, Placement
from migctl.planner.placement import place

GpuSpec = tuple[int, GpuModel] | MachineGpu


@dataclass(frozen=True, slots=True)
class _Item:
    """One wanted GI while it is being checked: where it came from and what it is."""

    rule: InstanceRule
    profile: GiProfile
    start_slice: int | None
    compute: tuple[str, ...]


def machine_gpus(gpus: Iterable[GpuSpec]) -> list[MachineGpu]:
    """The machine as MachineGpu values sorted by index; ValueError on a repeated index."""
    machine = sorted(
        (gpu if isinstance(gpu, MachineGpu) else MachineGpu(*gpu) for gpu in gpus),
        key=lambda g: g.index,
    )
    indexes = [gpu.index for gpu in machine]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"GPU indexes repeat: {indexes}")
    return machine


def _machine_text(machine: Sequence[MachineGpu]) -> str:
    return "; ".join(f"{g.index}: {g.model.key}" for g in machine) or "no GPUs"


def _matched(layout: Layout, rule: LayoutRule, machine: Sequence[MachineGpu]) -> list[MachineGpu]:
    matched = [gpu for gpu in machine if rule.selector.matches(gpu)]
    if rule.optional:
        return matched
    missing = sorted(set(rule.selector.indexes or ()) - {gpu.index for gpu in machine})
    if missing:
        raise layout.error(
            rule.select_path,
            f"GPU index {', '.join(map(str, missing))} does not exist on this machine",
            f"this machine has GPUs {_machine_text(machine)}; add 'optional: true' to skip "
            "entries for GPUs a machine lacks",
        )
    if not matched:
        raise layout.error(
            rule.select_path,
            f"selects no GPU on this machine ({rule.selector.describe()})",
            f"this machine has GPUs {_machine_text(machine)}; select GPUs that exist, or add "
            "'optional: true' to skip this entry where it matches nothing",
        )
    return matched


def resolve(layout: Layout, gpus: Iterable[GpuSpec]) -> dict[int, GpuLayout]:
    """{GPU index: GpuLayout} for every GPU the layout selects, sorted by index.

    ``gpus`` describes the machine: ``(index, GpuModel)`` pairs or :class:`MachineGpu`
    (which may carry the GPU's real PCI device id). Raises InvalidInputError naming the
    file, line and key path when a selector matches nothing, a profile is unknown for a
    model, MIG is asked of a GPU without it, or the instances cannot fit.
    """
    machine = machine_gpus(gpus)
    winner: dict[int, LayoutRule] = {}
    for rule in layout.rules:
        for gpu in _matched(layout, rule, machine):
            winner[gpu.index] = rule
    return {
        gpu.index: build_gpu_layout(layout, winner[gpu.index], gpu.model, f"GPU {gpu.index}")
        for gpu in machine
        if gpu.index in winner
    }


def build_gpu_layout(layout: Layout, rule: LayoutRule, model: GpuModel, where: str) -> GpuLayout:
    """The GpuLayout ``rule`` asks of a GPU of ``model``; ``where`` names it in errors."""
    if not rule.mig_enabled:
        return GpuLayout.disabled()
    if not model.mig_capable:
        raise layout.error(
            rule.mig_path,
            f"{model.name} ({where}) has no MIG, but this entry turns MIG on",
            "select only MIG-capable GPUs here (e.g. by model), or set MIG off for this GPU",
        )
    items = [item for inst in rule.instances for item in _expand(layout, inst, model, where)]
    if items and not model.plannable:
        raise NotSupportedError(
            f"{layout.source}: {rule.instances_path}: the catalog does not know the "
            f"placements of {model.name} ({where}), so instances cannot be planned",
            hint="capture the model from a real GPU with `migctl catalog capture`",
            context={"file": layout.source, "key_path": rule.instances_path},
        )
    _check_fit(layout, rule, model, where, items)
    return GpuLayout(
        True, tuple(WantedInstance(i.profile.name, i.start_slice, i.compute) for i in items)
    )


def _unknown_profile(
    layout: Layout, path: str, name: str, model: GpuModel, where: str, *, native: bool = True
) -> NoReturn:
    choices = [p.name for p in model.gi_profiles]
    ci_form = profiles.split_mig_parted_key(model, name)
    extra = ""
    if native and ci_form is not None:
        extra = f"{name} is a compute instance profile: write 'profile: {ci_form[0].name}' "
        extra += f"and 'compute: [{name}]'; "
    raise layout.error(
        path,
        f"unknown profile {name} for {model.name} ({where})",
        extra + profiles.suggestion(name, choices) + f"profiles: {', '.join(choices)}",
    )


def _unknown_ci(layout: Layout, path: str, name: str, gi: GiProfile, model: GpuModel) -> NoReturn:
    offered = [ci.name for ci in model.ci_profiles_for(gi.name)] or [gi.name]
    raise layout.error(
        path,
        f"unknown compute instance profile {name} in a {gi.name} GI on {model.name}",
        profiles.suggestion(name, offered) + f"CI profiles of {gi.name}: " + ", ".join(offered),
    )


def _ci_names(
    layout: Layout, inst: InstanceRule, gi: GiProfile, model: GpuModel, where: str
) -> tuple[str, ...]:
    if inst.compute is None:
        return (profiles.default_ci_name(model, gi),)
    chosen: list[CiProfile] = []
    for position, name in enumerate(inst.compute):
        ci = profiles.ci_profile(model, gi, name)
        if ci is None:
            _unknown_ci(layout, join(inst.key_path, "compute", position), name, gi, model)
        chosen.append(ci)
    _check_cis(layout, join(inst.key_path, "compute"), gi, chosen)
    return tuple(ci.name for ci in chosen)


def _check_cis(layout: Layout, path: str, gi: GiProfile, cis: Sequence[CiProfile]) -> None:
    if cis_fit(cis, gi.compute_slices):
        return
    reason = ci_count_refusal(cis) or (
        f"{', '.join(ci.name for ci in cis)} cannot share the {gi.compute_slices} compute "
        f"slices of a {gi.name} GI"
    )
    raise layout.error(path, reason, "use fewer or smaller compute instances")


def _expand(layout: Layout, inst: InstanceRule, model: GpuModel, where: str) -> list[_Item]:
    if inst.compute_from_name:
        split = profiles.split_mig_parted_key(model, inst.profile)
        if split is None:
            _unknown_profile(layout, inst.profile_path, inst.profile, model, where, native=False)
        gi, ci_name = split
        if ci_name != profiles.default_ci_name(model, gi):
            ci = profiles.ci_profile(model, gi, ci_name)
            if ci is None:
                _unknown_ci(layout, inst.profile_path, inst.profile, gi, model)
            _check_cis(layout, inst.profile_path, gi, [ci])
        return [_Item(inst, gi, None, (ci_name,)) for _ in range(inst.count)]
    found = profiles.gi_profile(model, inst.profile)
    if found is None:
        _unknown_profile(layout, inst.profile_path, inst.profile, model, where)
    compute = _ci_names(layout, inst, found, model, where)
    starts: Sequence[int | None] = inst.starts or [None] * inst.count
    for start in inst.starts or ():
        _check_start(layout, inst, found, model, start)
    return [_Item(inst, found, start, compute) for start in starts]


def _check_start(
    layout: Layout, inst: InstanceRule, profile: GiProfile, model: GpuModel, start: int
) -> None:
    legal = [p.start for p in profile.placements]
    if start not in legal:
        raise layout.error(
            join(inst.key_path, "placement"),
            f"{profile.name} cannot start at memory slice {start} on {model.name}",
            f"legal starts for {profile.name}: {', '.join(map(str, legal)) or 'unknown'} "
            f"(each {profile.memory_slices} slices long); or drop 'placement'",
        )


def _check_counts(layout: Layout, rule: LayoutRule, model: GpuModel, items: list[_Item]) -> None:
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
    limit = model.max_gpu_instances
    if limit is not None and len(items) > limit:
        raise layout.error(
            rule.instances_path,
            f"{len(items)} GPU instances asked, {model.name} allows at most {limit}",
            "ask for fewer instances",
        )


def _media_conflict(items: Sequence[_Item]) -> str | None:
    holders = [i.profile.name for i in items if i.profile.is_all_media]
    others = [i.profile.name for i in items if not i.profile.is_no_media]
    if holders and len(others) > 1:
        return f"{holders[0]} takes every media engine: only -me profiles may be beside it"
    return None


def _fixed_occupants(layout: Layout, model: GpuModel, items: Sequence[_Item]) -> list[Occupant]:
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


def _check_fit(
    layout: Layout, rule: LayoutRule, model: GpuModel, where: str, items: list[_Item]
) -> None:
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
