"""Plans for GPUs that are not here: ``migctl plan --model h100 --gpus 4 --split 7``.

Why this module exists: "what would this layout look like on four H100s?" must be answerable
without a driver, a daemon or a lease database, with exactly the rules a node applies. The
target is resolved by :func:`migctl.node.targets.resolve_target` (the one resolver), against
``count`` empty GPUs of a catalog model, and each is planned from "MIG off, no instances".
Pure: no hardware, no files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.catalog import Catalog
    from migctl.model import GpuModel
    from migctl.reports import PlanReport
    from migctl.schemas.layouts import Target


def plan_offline(
    target: Target, model: GpuModel, count: int, catalog: Catalog, force: bool = False
) -> PlanReport:
    """The plans reaching ``target`` on ``count`` empty GPUs of ``model``."""
    from migctl.layout import MachineGpu
    from migctl.node.targets import resolve_target
    from migctl.planner import CurrentGpu, reconfigure
    from migctl.reports import PlanReport

    machine = [MachineGpu(index, model) for index in range(count)]
    found = resolve_target(target, machine, None, catalog)
    currents = {g: CurrentGpu(g, (), mig_enabled=False) for g in found.targets}
    plans = {
        g: reconfigure(model, currents[g], desired, force=force)
        for g, desired in sorted(found.targets.items())
    }
    return PlanReport(plans, currents, found.reasons)
