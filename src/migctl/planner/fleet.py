"""Plan a whole fleet from its real state: serve demand by reshaping only idle instances.

Why this exists: a fleet controller sees thousands of GPUs, each in its own layout with
some instances busy, and a demand (counts of instances by profile or by size). It needs
per-GPU target layouts that serve as much demand as possible, then destroy the fewest
idle instances, then reshape the fewest GPUs; busy instances are never destroyed or
moved. ``plan_fleet`` answers that:

1. GPUs in the same state (model, instances with placements, busy flags) form one class,
   and each class lists its options (``fleet_options``): the work grows with the variety
   of states, not with the number of GPUs;
2. an integer program picks options (``fleet_milp``), optimal stage by stage within the
   time limit; the greedy (``fleet_greedy``) always runs too, and answers alone when the
   exact model is too large, scipy is missing or ``method="heuristic"``;
3. the counts become per-GPU targets with placements (``fleet_expand``).

Demand counts beyond what the fleet could ever hold are clipped to that (the excess is
reported unmet). GPUs whose model cannot be planned (no MIG, geometry unknown) are left
out with a note. Pure and deterministic; imported by the fleet controller and benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from migctl.errors import InvalidInputError
from migctl.planner.fleet_expand import expand
from migctl.planner.fleet_greedy import greedy
from migctl.planner.fleet_milp import Choice, FleetModel, Group, columns, group_states
from migctl.planner.fleet_model import (
    FleetGpu,
    FleetInstance,
    FleetPlan,
    GpuTarget,
    NewInstance,
    check_unique,
    fleet_capacity,
)
from migctl.planner.fleet_options import ModelRoom, model_rooms, state_classes
from migctl.planner.packing_model import Demand, DemandClass, build_problem

__all__ = [
    "Demand",
    "FleetGpu",
    "FleetInstance",
    "FleetPlan",
    "GpuTarget",
    "NewInstance",
    "plan_fleet",
]

METHODS = ("auto", "exact", "heuristic")
MAX_EXACT_VARIABLES = 200_000


def _rank(groups: list[Group], choice: Choice) -> tuple[int, int, int]:
    destroyed = reshaped = 0
    for group, counts in zip(groups, choice.counts, strict=True):
        for option, count in zip(group.options, counts, strict=True):
            destroyed += option.destroyed * count
            reshaped += count if option.change else 0
    return (sum(choice.unmet), destroyed, reshaped)


def _demand_classes(gpus: Sequence[FleetGpu], demands: Sequence[Demand]) -> list[DemandClass]:
    models = {g.model.key: g.model for g in gpus}
    problem = build_problem([models[k] for k in sorted(models)], demands)
    capacity = fleet_capacity(gpus)
    for entry in problem.classes:
        entry.count = min(entry.count, capacity)
    return problem.classes


def _solve(
    groups: list[Group],
    rooms: dict[str, ModelRoom],
    demand: list[DemandClass],
    method: str,
    time_limit_s: float,
) -> tuple[Choice, int]:
    """The chosen answer and a lower bound on its unmet instances."""
    heuristic = greedy(groups, rooms, demand)
    exact_possible = method == "exact" or columns(groups, rooms, demand).size <= MAX_EXACT_VARIABLES
    if method == "heuristic" or not exact_possible:
        if method != "heuristic":
            heuristic.notes.append("exact model too large; greedy only")
        bound = 0
        if method != "heuristic":
            bound = FleetModel(groups, rooms, demand).unmet_bound(time_limit_s) or 0
        return heuristic, bound
    model = FleetModel(groups, rooms, demand)
    exact = model.solve(time_limit_s)
    if exact is not None and exact.optimal:
        return exact, sum(exact.unmet)
    bound = model.unmet_bound(time_limit_s) or 0
    if exact is None or _rank(groups, heuristic) < _rank(groups, exact):
        heuristic.notes.extend(exact.notes if exact else ["the exact model found nothing"])
        return heuristic, bound
    return exact, bound


def plan_fleet(
    gpus: Sequence[FleetGpu],
    demands: Sequence[Demand],
    *,
    method: str = "auto",
    time_limit_s: float = 10.0,
) -> FleetPlan:
    """Per-GPU targets serving ``demands`` (see the module docstring).

    Raises ``InvalidInputError`` for an unknown method, a GPU listed twice or a GPU whose
    reported instances are not a legal layout; ``NotFoundError`` for an unknown profile.
    """
    if method not in METHODS:
        raise InvalidInputError(
            f"unknown fleet planning method {method!r}", hint=f"one of {METHODS}"
        )
    started = time.perf_counter()
    check_unique(gpus)
    usable = [g for g in gpus if g.model.plannable]
    notes = (
        [f"{len(gpus) - len(usable)} GPUs without plannable MIG left out"]
        if len(usable) < len(gpus)
        else []
    )
    demand = _demand_classes(usable, demands) if usable else []
    models = {g.model.key: g.model for g in usable}
    rooms = model_rooms([models[k] for k in sorted(models)], demands)
    classes = state_classes(usable, rooms)
    groups = group_states(classes)
    choice, bound = _solve(groups, rooms, demand, method, time_limit_s)
    targets, unmet = expand(groups, rooms, demand, choice, len(demands))
    if not usable:
        unmet = [d.count for d in demands]
    served = sum(d.count for d in demands) - sum(unmet)
    plan = FleetPlan(
        targets=tuple(targets),
        unmet=tuple(unmet),
        served=served,
        destroyed=sum(len(t.destroyed) for t in targets),
        reshaped=sum(1 for t in targets if t.changed),
        method=choice.method,
        optimal=choice.optimal,
        unmet_bound=bound + sum(d.count for d in demands) - sum(e.count for e in demand),
        classes=len(classes),
        groups=len(groups),
        options=sum(len(g.options) for g in groups),
        solve_time_s=0.0,
        notes=tuple(notes + choice.notes),
    )
    return replace(plan, solve_time_s=time.perf_counter() - started)
