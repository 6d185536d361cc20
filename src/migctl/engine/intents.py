"""An intent over a machine's GPUs -> each GPU's desired layout: split N ways, size, a demand.

Why this exists: most people do not think in profiles and placements but in "split this
GPU in four", "I need 12 GiB", "these jobs must fit". The planner answers each with the
instances it needs (``migctl.planner.intent_instances``: profiles and placements, per GPU
model); this module turns the answers into per-GPU ``DesiredLayout`` values, with the reasons
to show, that the engine plans, applies or checks. Pure; imported by ``migctl.node.targets``
(the one place targets are resolved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from migctl.errors import UsageError
from migctl.geometry import remaining_capacity
from migctl.model import GpuModel
from migctl.planner import DesiredGi, DesiredLayout, fit_demand, place, smallest_profile, split


@dataclass(frozen=True)
class IntentResult:
    targets: dict[int, DesiredLayout]
    reasons: tuple[str, ...] = ()


def split_layouts(models: Mapping[int, GpuModel], n: int) -> IntentResult:
    """N equal instances on each GPU: the largest profile that allows N."""
    targets = {}
    reasons = []
    for gpu, model in sorted(models.items()):
        occupants = split(model, n)
        targets[gpu] = DesiredLayout(
            tuple(DesiredGi(o.profile.name, o.placement) for o in occupants)
        )
        reasons.append(f"GPU {gpu}: {n} x {occupants[0].profile.name}")
    return IntentResult(targets, tuple(reasons))


def sized_layouts(
    models: Mapping[int, GpuModel],
    *,
    memory_mib: int | None,
    sms: int | None,
    share: float | None,
    count: int | None,
) -> IntentResult:
    """``count`` (default: as many as fit) instances of the smallest profile meeting the need."""
    if memory_mib is None and sms is None and share is None:
        raise UsageError("say what each instance needs: --memory, --sms or --share")
    targets = {}
    reasons = []
    for gpu, model in sorted(models.items()):
        sizing = smallest_profile(model, memory_mib=memory_mib, sms=sms, share=share)
        most = remaining_capacity(model, sizing.profile, [])
        if count is not None and count > most:
            raise UsageError(
                f"GPU {gpu} ({model.nvidia_smi_name}) cannot hold {count} x {sizing.profile.name}",
                hint=f"at most {most} fit",
            )
        placed = place(model, [sizing.profile] * (count or most)) or []
        targets[gpu] = DesiredLayout(tuple(DesiredGi(o.profile.name, o.placement) for o in placed))
        reasons.append(f"GPU {gpu}: {len(placed)} x {sizing.reason}")
    return IntentResult(targets, tuple(reasons))


def demand_layouts(models: Mapping[int, GpuModel], demand: str) -> IntentResult:
    """The layout over the machine's GPUs that fits all of ``demand`` on the fewest GPUs."""
    order = sorted(models)
    fit = fit_demand([models[g] for g in order], demand).require()
    targets: dict[int, DesiredLayout] = {}
    for layout in fit.result.layouts:
        gpu = order[layout.gpu_index]
        targets[gpu] = DesiredLayout(
            tuple(DesiredGi(i.profile, i.placement) for i in layout.instances)
        )
    used = sum(1 for t in targets.values() if t.gis)
    reasons = [f"{text}: {counts}" for text, counts in fit.profiles_used().items()]
    reasons.append(
        f"uses {used} of {len(order)} GPUs ({fit.result.method}, optimal={fit.result.optimal})"
    )
    return IntentResult(targets, tuple(reasons))
