"""A target -> the desired layout of each GPU it concerns: the one place targets are resolved.

Why this module exists: a layout file, ``split N``, a demand mix, sizes or explicit layouts must
mean the same whether a user runs the CLI here, calls the library, or asks a daemon: the daemon
resolves what a ``RemoteNode`` sends with this very function. A layout file is checked against
the whole machine (an entry for GPUs outside ``-i`` is valid, merely out of scope), then narrowed
to the chosen GPUs; intents apply to the chosen MIG GPUs only. Every resolved target is proven
reachable on an empty GPU of its model before anything else happens.

Pure: no hardware. Imports layout, planner, engine intents and the schemas of targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migctl.catalog import Catalog
from migctl.errors import NotSupportedError
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

Resolved = tuple[dict[int, DesiredLayout], tuple[str, ...]]


def resolve_target(
    target: Target,
    machine: Mapping[int, GpuModel],
    chosen: Sequence[int] | None,
    catalog: Catalog,
) -> Resolved:
    """The per-GPU layouts ``target`` asks for on ``chosen`` GPUs (None: all), with reasons.

    ``machine`` holds every GPU's live model, GPUs without MIG included (``mig_capable``
    False): a layout file is judged against all of them.
    """
    scope = _scope(machine, chosen, needs_mig=not isinstance(target, LayoutTarget))
    reasons: tuple[str, ...] = ()
    if isinstance(target, LayoutTarget):
        targets = _from_layout(target, machine, scope, catalog)
    elif isinstance(target, InstancesTarget):
        targets = _from_instances(target, machine, scope)
    else:
        targets, reasons = _from_intent(target, {g: machine[g] for g in scope})
    check_reachable(targets, machine)
    return targets, reasons


def _scope(
    machine: Mapping[int, GpuModel], chosen: Sequence[int] | None, *, needs_mig: bool
) -> list[int]:
    if chosen is None:
        return sorted(g for g, m in machine.items() if m.mig_capable or not needs_mig)
    for gpu in chosen:
        if gpu not in machine:
            known = ", ".join(map(str, sorted(machine))) or "none"
            raise NotSupportedError(
                f"GPU {gpu} does not exist on this machine",
                hint=f"GPUs: {known}",
                context={"gpu": gpu},
            )
        if needs_mig and not machine[gpu].mig_capable:
            raise NotSupportedError(
                f"GPU {gpu} ({machine[gpu].name}) has no MIG",
                hint="choose MIG GPUs with -i (see `migctl list`)",
                context={"gpu": gpu},
            )
    return sorted(set(chosen))


def _from_layout(
    target: LayoutTarget,
    machine: Mapping[int, GpuModel],
    scope: Sequence[int],
    catalog: Catalog,
) -> dict[int, DesiredLayout]:
    from migctl.layout.bridge import targets_from_text

    resolved = targets_from_text(target.text, target.config, machine, catalog, source=target.source)
    wanted = set(scope)
    return {g: t for g, t in resolved.items() if g in wanted and machine[g].mig_capable}


def _from_instances(
    target: InstancesTarget, machine: Mapping[int, GpuModel], scope: Sequence[int]
) -> dict[int, DesiredLayout]:
    layouts = target.value()
    _scope(machine, sorted(layouts), needs_mig=True)
    wanted = set(scope)
    return {g: t for g, t in layouts.items() if g in wanted}


def _from_intent(
    target: SplitTarget | DemandTarget | SizeTarget, models: Mapping[int, GpuModel]
) -> Resolved:
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


def check_reachable(targets: Mapping[int, DesiredLayout], machine: Mapping[int, GpuModel]) -> None:
    """Refuse any layout that could not exist even on an empty GPU of its model."""
    for gpu, desired in sorted(targets.items()):
        reconfigure(machine[gpu], CurrentGpu(gpu, (), mig_enabled=False), desired, force=True)
