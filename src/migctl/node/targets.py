"""A target -> the desired layout of each GPU it concerns: the one place targets are resolved.

Why this module exists: a layout file, ``split N``, a demand mix, sizes or explicit layouts must
mean the same whether a user runs the CLI here, calls the library, or asks a daemon: the daemon
resolves what a ``RemoteNode`` sends with this very function. A layout file is resolved against
the whole machine (its selectors may name GPUs outside ``-i``), then only the chosen GPUs are
checked and planned (``node.layout_files``); intents apply to the chosen MIG GPUs only. Every
resolved target is proven reachable on an empty GPU of its model before anything else happens.

Pure: no hardware. Imports layout, planner, engine intents, the soft-share targets
(``engine.soft_plan``) and the schemas of targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migctl.catalog import Catalog
from migctl.engine.soft_plan import SoftTargets
from migctl.errors import NotSupportedError
from migctl.layout import MachineGpu
from migctl.model import GpuModel
from migctl.planner import CurrentGpu, DesiredLayout, reconfigure
from migctl.schemas.layouts import (
    DemandTarget,
    InstancesTarget,
    LayoutTarget,
    SizeTarget,
    SplitTarget,
    Target,
)


@dataclass(frozen=True)
class Resolved:
    """What a target asks of each chosen GPU, and what the resolution noticed on the way."""

    targets: dict[int, DesiredLayout]
    reasons: tuple[str, ...] = ()  # plan/apply: how an intent was read; what a file leaves aside
    check_notes: tuple[str, ...] = ()  # check: what a file names that is not compared
    compared: tuple[int, ...] = ()  # check: GPUs the target covers (matching when no target)
    unmatched: dict[int, list[str]] = field(default_factory=dict)  # check: fails regardless
    counts_only: bool = False  # mig-parted: a GPU whose CI counts already match is kept
    soft: SoftTargets | None = None  # a native layout's soft shares (None: left as they are)


def resolve_target(
    target: Target,
    machine: Sequence[MachineGpu],
    chosen: Sequence[int] | None,
    catalog: Catalog,
) -> Resolved:
    """What ``target`` asks of the ``chosen`` GPUs (None: all) of ``machine``.

    ``machine`` holds every GPU with its live model and PCI ids, GPUs without MIG included
    (``mig_capable`` False): a layout file is judged against all of them.
    """
    models = {gpu.index: gpu.model for gpu in machine}
    scope = _scope(models, chosen, needs_mig=not isinstance(target, LayoutTarget))
    if isinstance(target, LayoutTarget):
        found = _from_layout(target, machine, {g: models[g] for g in scope}, catalog)
    elif isinstance(target, InstancesTarget):
        found = Resolved(_from_instances(target, models, scope))
    else:
        targets, reasons = _from_intent(target, {g: models[g] for g in scope})
        found = Resolved(targets, reasons, compared=tuple(sorted(targets)))
    check_reachable(found.targets, models)
    return found


def _scope(
    models: Mapping[int, GpuModel], chosen: Sequence[int] | None, *, needs_mig: bool
) -> list[int]:
    if chosen is None:
        return sorted(g for g, m in models.items() if m.mig_capable or not needs_mig)
    for gpu in chosen:
        if gpu not in models:
            known = ", ".join(map(str, sorted(models))) or "none"
            raise NotSupportedError(
                f"GPU {gpu} does not exist on this machine",
                hint=f"GPUs: {known}",
                context={"gpu": gpu},
            )
        if needs_mig and not models[gpu].mig_capable:
            raise NotSupportedError(
                f"GPU {gpu} ({models[gpu].name}) has no MIG",
                hint="choose MIG GPUs with -i (see `migctl list`)",
                context={"gpu": gpu},
            )
    return sorted(set(chosen))


def _from_layout(
    target: LayoutTarget,
    machine: Sequence[MachineGpu],
    chosen: dict[int, GpuModel],
    catalog: Catalog,
) -> Resolved:
    from migctl.node.layout_files import file_targets, parse_layout

    layout = parse_layout(target.text, target.config, target.source, catalog)
    found = file_targets(layout, list(machine), chosen)
    layouts = found.resolution.layouts
    soft = None
    if not found.mig_parted:  # a mig-parted config cannot say anything of soft shares
        soft = SoftTargets(
            {g: w.shares for g, w in layouts.items()},
            {g: w.mig_enabled for g, w in layouts.items()},
        )
    return Resolved(
        found.targets,
        found.notes(),
        found.notes(checking=True),
        tuple(sorted(layouts)),
        found.unmatched(),
        counts_only=found.mig_parted,
        soft=soft,
    )


def _from_instances(
    target: InstancesTarget, models: Mapping[int, GpuModel], scope: Sequence[int]
) -> dict[int, DesiredLayout]:
    layouts = target.value()
    _scope(models, sorted(layouts), needs_mig=True)
    wanted = set(scope)
    return {g: t for g, t in layouts.items() if g in wanted}


def _from_intent(
    target: SplitTarget | DemandTarget | SizeTarget, models: Mapping[int, GpuModel]
) -> tuple[dict[int, DesiredLayout], tuple[str, ...]]:
    from migctl.engine import intents

    if isinstance(target, SplitTarget):
        result = intents.split_layouts(models, target.n)
    elif isinstance(target, DemandTarget):
        result = intents.demand_layouts(models, target.demand)
    else:
        result = intents.sized_layouts(
            models,
            memory_mib=target.memory_mib,
            sms=target.sms,
            share=target.share,
            count=target.count,
        )
    return result.targets, result.reasons


def check_reachable(targets: Mapping[int, DesiredLayout], models: Mapping[int, GpuModel]) -> None:
    """Refuse any layout that could not exist even on an empty GPU of its model."""
    for gpu, desired in sorted(targets.items()):
        reconfigure(models[gpu], CurrentGpu(gpu, (), mig_enabled=False), desired, force=True)
