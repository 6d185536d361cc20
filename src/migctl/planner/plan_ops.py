"""Turn a chosen reconfiguration (kept, destroyed, new instances) into an ordered Plan.

Why this exists: the search in ``planner.reconfigure`` decides *what* changes; this
module decides the *order* in which the driver can do it. Order: enable MIG mode; destroy
CIs (a GI with CIs cannot be destroyed); destroy GIs; disable MIG mode when the layout
wants it off; create GIs (every slice they need is free by then); create CIs. Within a
step, by GI id or placement, so the same input always gives the same plan.
Imported only by ``planner.reconfigure``.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner.ci_layout import CiPlan, CiSpec, plan_cis
from migctl.planner.plan import (
    CreateCi,
    CreateGi,
    CurrentGi,
    CurrentGpu,
    DestroyCi,
    DestroyGi,
    GiRef,
    Op,
    Plan,
    PlannedCi,
    PlannedGi,
    SetMigMode,
)


@dataclass(frozen=True, slots=True)
class Wish:
    """A desired GI, resolved against the catalog."""

    profile: GiProfile
    placement: Placement | None
    cis: tuple[CiSpec, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """One way to reach the layout: what is kept (with its CI change), destroyed, created."""

    kept: tuple[tuple[CurrentGi, Wish, CiPlan], ...]
    destroyed: tuple[CurrentGi, ...]
    new: tuple[tuple[Wish, Placement], ...]
    cost: tuple[int, int, int, int]

    @property
    def busy_lost(self) -> list[str]:
        lost = [gi.label() for gi in self.destroyed if gi.in_use]
        for gi, _, ci_plan in self.kept:
            lost.extend(
                f"CI {ci.ci_id} ({ci.profile}) of GI {gi.gi_id}"
                for ci in ci_plan.destroyed
                if ci.busy
            )
        return lost


def _destroys(gpu: int, choice: Choice) -> list[Op]:
    ci_ops: list[DestroyCi] = []
    for gi in choice.destroyed:
        ci_ops.extend(
            DestroyCi(gpu, gi.gi_id, ci.ci_id, ci.profile, ci.placement, ci.busy) for ci in gi.cis
        )
    for gi, _, ci_plan in choice.kept:
        ci_ops.extend(
            DestroyCi(gpu, gi.gi_id, ci.ci_id, ci.profile, ci.placement, ci.busy)
            for ci in ci_plan.destroyed
        )
    ci_ops.sort(key=lambda op: (op.gi_id, op.ci_id))
    gi_ops = sorted(
        (DestroyGi(gpu, g.gi_id, g.profile, g.placement, g.in_use) for g in choice.destroyed),
        key=lambda op: op.gi_id,
    )
    return [*ci_ops, *gi_ops]


def _creates(gpu: int, choice: Choice) -> tuple[list[Op], list[PlannedGi]]:
    gi_ops: list[CreateGi] = []
    ci_ops: list[CreateCi] = []
    final: list[PlannedGi] = []
    for gi, _, ci_plan in choice.kept:
        ref = GiRef(gi.placement, gi.gi_id)
        ci_ops.extend(
            CreateCi(gpu, ref, p.name, p.nvml_index, where) for p, where in ci_plan.created
        )
        cis = [PlannedCi(ci.profile, ci.placement, ci.ci_id) for ci in ci_plan.kept]
        cis.extend(PlannedCi(p.name, where) for p, where in ci_plan.created)
        final.append(PlannedGi(gi.profile, gi.placement, _by_start(cis), gi.gi_id))
    for wish, placement in choice.new:
        gi_ops.append(CreateGi(gpu, wish.profile.name, wish.profile.id, placement))
        new_cis = plan_cis((), wish.cis, force=False)
        assert new_cis is not None  # checked when the layout was resolved
        ref = GiRef(placement)
        ci_ops.extend(
            CreateCi(gpu, ref, p.name, p.nvml_index, where) for p, where in new_cis.created
        )
        cis = [PlannedCi(p.name, where) for p, where in new_cis.created]
        final.append(PlannedGi(wish.profile.name, placement, _by_start(cis)))
    gi_ops.sort(key=lambda op: op.placement.start)
    ci_ops.sort(key=lambda op: (op.gi.placement.start, op.placement.start))
    final.sort(key=lambda g: g.placement.start)
    return [*gi_ops, *ci_ops], final


def _by_start(cis: list[PlannedCi]) -> tuple[PlannedCi, ...]:
    return tuple(sorted(cis, key=lambda c: c.placement.start))


def build_plan(model: GpuModel, current: CurrentGpu, mig_enabled: bool, choice: Choice) -> Plan:
    """The ordered plan for ``choice``, with the MIG mode change when one is needed."""
    gpu = current.gpu_index
    ops: list[Op] = []
    mode: bool | None = None
    if mig_enabled and not current.mig_enabled:
        ops.append(SetMigMode(gpu, True))
        mode = True
    ops.extend(_destroys(gpu, choice))
    if not mig_enabled and current.mig_enabled:
        ops.append(SetMigMode(gpu, False))
        mode = False
    creates, final = _creates(gpu, choice)
    ops.extend(creates)
    return Plan(
        gpu_index=gpu,
        model_key=model.key,
        ops=tuple(ops),
        final=tuple(final),
        kept_gi_ids=tuple(sorted(gi.gi_id for gi, _, _ in choice.kept)),
        forced=tuple(choice.busy_lost),
        mig_mode=mode,
    )
