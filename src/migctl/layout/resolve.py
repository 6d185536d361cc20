"""Resolve a layout against a machine: one exact, verified GpuLayout per selected GPU.

Why this exists: a layout file speaks of selectors and profile counts; apply and assert
need, for each GPU, the MIG mode and the instances it must hold, checked against that
GPU's model (:mod:`migctl.layout.feasible`): known GI and CI profiles, legal fixed
placements, counts within limits (before any count is expanded) and a proof that all
instances fit together. mig-parted's compute-instance counts are packed into shared GIs
as mig-parted packs them (:mod:`migctl.layout.migparted_pack`).

Precedence: rules apply in file order and a later rule replaces an earlier one for every
GPU it selects (as mig-parted applies its entries). GPUs no rule selects are absent from
the layouts (not managed); :class:`Resolution` lists them, because mig-parted's assert
fails on them. Only the rule that wins for a GPU is checked against it, and only for the
GPUs asked about (``only``, the CLI's ``-i``): selectors are matched against the whole
machine, so an entry for other GPUs is neither an error nor checked.
Pure: no hardware; imports model, the planner's placement search and the layout types.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from migctl.errors import NotSupportedError
from migctl.layout import profiles
from migctl.layout.ci_fit import ci_count_refusal, cis_fit
from migctl.layout.feasible import Item, check_count, check_fit, check_total
from migctl.layout.migparted_pack import CiKind, Count, kind_of, pack
from migctl.layout.problems import join
from migctl.layout.shares import NO_SHARES, GpuShares, MigShares, ShareLayout
from migctl.layout.types import (
    GpuLayout,
    InstanceRule,
    Layout,
    LayoutRule,
    MachineGpu,
    WantedInstance,
)
from migctl.model import CiProfile, GiProfile, GpuModel

GpuSpec = tuple[int, GpuModel] | MachineGpu


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a layout asks of a machine's GPUs, and the GPUs it leaves aside.

    ``layouts``: the GPUs whose winning entry applies, by index. ``unselected``: GPUs no
    entry selects. ``skipped``: GPUs without MIG that a mig-parted ``devices: all`` entry
    turning MIG on passes over (mig-parted's apply skips them, its assert fails on them).
    ``absent``: GPU indexes that optional entries name and the machine lacks.
    """

    layouts: dict[int, GpuLayout] = field(default_factory=dict)
    unselected: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()
    absent: tuple[int, ...] = ()


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


def _matched(
    layout: Layout, rule: LayoutRule, machine: Sequence[MachineGpu]
) -> tuple[list[MachineGpu], list[int]]:
    """The GPUs ``rule`` selects, and the indexes it names that the machine lacks."""
    matched = [gpu for gpu in machine if rule.selector.matches(gpu)]
    missing = sorted(set(rule.selector.indexes or ()) - {gpu.index for gpu in machine})
    if rule.optional:
        return matched, missing
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
    return matched, []


def resolve_machine(
    layout: Layout, gpus: Iterable[GpuSpec], *, only: Collection[int] | None = None
) -> Resolution:
    """The :class:`Resolution` of ``layout`` on a machine, for the GPUs in ``only`` (all).

    ``gpus`` describes the machine: ``(index, GpuModel)`` pairs or :class:`MachineGpu`
    (which may carry the GPU's real PCI ids). Raises InvalidInputError naming the file,
    line and key path when a selector matches nothing, a profile is unknown for a model,
    a count exceeds what the GPU holds, MIG is asked of a GPU without it, or the
    instances cannot fit.
    """
    machine = machine_gpus(gpus)
    winner: dict[int, LayoutRule] = {}
    absent: set[int] = set()
    for rule in layout.rules:
        matched, missing = _matched(layout, rule, machine)
        absent.update(missing)
        for gpu in matched:
            winner[gpu.index] = rule
    layouts: dict[int, GpuLayout] = {}
    unselected: list[int] = []
    skipped: list[int] = []
    for gpu in machine:
        won = winner.get(gpu.index)
        if only is not None and gpu.index not in only:
            continue
        if won is None:
            unselected.append(gpu.index)
        elif won.skips_gpus_without_mig and won.mig_enabled and not gpu.model.mig_capable:
            skipped.append(gpu.index)
        else:
            layouts[gpu.index] = build_gpu_layout(layout, won, gpu.model, f"GPU {gpu.index}")
    return Resolution(layouts, tuple(unselected), tuple(skipped), tuple(sorted(absent)))


def resolve(
    layout: Layout, gpus: Iterable[GpuSpec], *, only: Collection[int] | None = None
) -> dict[int, GpuLayout]:
    """{GPU index: GpuLayout} for every GPU the layout selects (of ``only``), by index."""
    return resolve_machine(layout, gpus, only=only).layouts


def build_gpu_layout(layout: Layout, rule: LayoutRule, model: GpuModel, where: str) -> GpuLayout:
    """The GpuLayout ``rule`` asks of a GPU of ``model``; ``where`` names it in errors."""
    if not rule.mig_enabled:
        whole = GpuShares(whole=rule.shares) if rule.shares is not None else NO_SHARES
        return GpuLayout(False, (), whole)
    if not model.mig_capable:
        raise layout.error(
            rule.mig_path,
            f"{model.name} ({where}) has no MIG, but this entry turns MIG on",
            "select only MIG-capable GPUs here (e.g. by model), or set MIG off for this GPU",
        )
    if rule.instances and not model.plannable:
        raise NotSupportedError(
            f"{layout.source}: {rule.instances_path}: the catalog does not know the "
            f"placements of {model.name} ({where}), so instances cannot be planned",
            hint="capture the model from a real GPU with `migctl catalog capture`",
            context={"file": layout.source, "key_path": rule.instances_path},
        )
    if any(inst.compute_from_name for inst in rule.instances):
        items = _mig_parted_items(layout, rule, model, where)
    else:
        items = _native_items(layout, rule, model, where)
    check_fit(layout, rule, model, where, items)
    return GpuLayout(
        True,
        tuple(WantedInstance(i.profile.name, i.start_slice, i.compute) for i in items),
        _mig_shares(layout, items, where),
    )


def _mig_shares(layout: Layout, items: Sequence[Item], where: str) -> GpuShares:
    """The shares of each MIG device (GI profile, CI profile) the items create; refused when
    devices of one pair of profiles would get different shares (which device gets which
    could not be told)."""
    wanted: dict[tuple[str, str], tuple[ShareLayout | None, InstanceRule]] = {}
    for item in items:
        for ci_name in item.compute:
            key = (item.profile.name, ci_name)
            seen = wanted.setdefault(key, (item.rule.shares, item.rule))
            if seen[0] != item.rule.shares:
                raise layout.error(
                    join(item.rule.key_path, "shares"),
                    f"MIG devices {ci_name} on {where} would get different soft shares "
                    f"({_shares_text(seen[0])} at {seen[1].key_path}, "
                    f"{_shares_text(item.rule.shares)} here)",
                    "give every instance entry of one profile the same 'shares' (or none)",
                )
    return GpuShares(
        mig=tuple(
            MigShares(gi, ci, shares, join(rule.key_path, "shares"))
            for (gi, ci), (shares, rule) in sorted(wanted.items())
            if shares is not None
        )
    )


def _shares_text(shares: ShareLayout | None) -> str:
    return "none" if shares is None else shares.describe()


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


def _check_cis(layout: Layout, path: str, gi: GiProfile, cis: Sequence[CiProfile]) -> None:
    if cis_fit(cis, gi.compute_slices):
        return
    reason = ci_count_refusal(cis) or (
        f"{', '.join(ci.name for ci in cis)} cannot share the {gi.compute_slices} compute "
        f"slices of a {gi.name} GI"
    )
    raise layout.error(path, reason, "use fewer or smaller compute instances")


def _ci_names(
    layout: Layout, inst: InstanceRule, gi: GiProfile, model: GpuModel
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


def _native_items(layout: Layout, rule: LayoutRule, model: GpuModel, where: str) -> list[Item]:
    """One Item per GI of the native entry, each count bounded before it is expanded."""
    items: list[Item] = []
    for inst in rule.instances:
        found = profiles.gi_profile(model, inst.profile)
        if found is None:
            _unknown_profile(layout, inst.profile_path, inst.profile, model, where)
        check_count(layout, inst, model, found.name, found.max_instances)
        check_total(layout, rule, model, len(items) + inst.count)
        compute = _ci_names(layout, inst, found, model)
        for start in inst.starts or ():
            _check_start(layout, inst, found, model, start)
        starts: Sequence[int | None] = inst.starts or [None] * inst.count
        items.extend(Item(inst, found, start, compute) for start in starts)
    return items


def _ci_kind(
    layout: Layout, inst: InstanceRule, model: GpuModel, where: str
) -> tuple[GiProfile, CiKind]:
    """The GI profile and the CI a mig-parted key names, checked against ``model``."""
    split = profiles.split_mig_parted_key(model, inst.profile)
    if split is None:
        _unknown_profile(layout, inst.profile_path, inst.profile, model, where, native=False)
    gi, ci_name = split
    kind = kind_of(model, gi, ci_name)
    if kind is None:
        _unknown_ci(layout, inst.profile_path, inst.profile, gi, model)
    ci = profiles.ci_profile(model, gi, ci_name)
    if ci is not None:
        _check_cis(layout, inst.profile_path, gi, [ci])
    return gi, kind


def _mig_parted_items(layout: Layout, rule: LayoutRule, model: GpuModel, where: str) -> list[Item]:
    """The GIs mig-parted would create for the entry's counts, each bounded first."""
    counts: list[Count] = []
    for inst in rule.instances:
        gi, ci = _ci_kind(layout, inst, model, where)
        per_gi = max(1, min(ci.max_per_gi, gi.compute_slices // max(1, ci.compute_slices)))
        why = "" if per_gi == 1 else f" ({gi.max_instances} x {gi.name}, {per_gi} in each)"
        check_count(layout, inst, model, inst.profile, gi.max_instances * per_gi, why=why)
        counts.append(Count(inst, gi, ci, inst.count))
    return [Item(g.rule, g.profile, None, tuple(g.compute)) for g in pack(counts)]
