"""Exact fleet planning: an integer program over groups of GPU states and their options.

Why this exists: the controller must know that a fleet plan serves the most demand while
destroying the fewest idle instances and reshaping the fewest GPUs, not only hope so.
Variables: z[g,o] = GPUs of group g taking option o (every GPU takes exactly one, option
0 being "no change"); y[m,p,c] = instances of profile p on model m given to demand class
c; u[c] = unmet instances of class c. Constraints: each class is served or counted unmet;
on each model, what is given of a profile is at most the options' supply of it. The
objectives are lexicographic and solved in stages, each optimum fixed before the next
(as ``packing_milp`` does): fewest unmet, fewest idle instances destroyed, fewest GPUs
reshaped, fewest memory slices handed out (smallest fitting profiles). The size depends on
the groups' options and the demand classes only, never on the GPU count. HiGHS through
scipy (the ``planner`` extra); without it the greedy answers. Imported by ``planner.fleet``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from migctl.planner.fleet_options import ModelRoom, Option, StateClass
from migctl.planner.packing_milp import STATUS_TEXT
from migctl.planner.packing_model import DemandClass

Give = tuple[str, str, int]  # (model key, profile name, demand class)
STAGES = ("unmet", "destroyed", "reshaped", "memory")


@dataclass
class Group:
    """States whose options have equal values: interchangeable for the solver."""

    model_key: str
    classes: list[StateClass]
    options: list[Option]  # the first member's; the others' values are equal in order

    @property
    def count(self) -> int:
        return sum(len(c.gpus) for c in self.classes)


@dataclass
class Choice:
    """A solver's answer: GPUs per (group, option), instances given, unmet per class."""

    method: str
    optimal: bool
    counts: list[list[int]]  # per group, per option
    given: dict[Give, int]
    unmet: list[int]
    notes: list[str] = field(default_factory=list)


def group_states(classes: list[StateClass]) -> list[Group]:
    groups: dict[tuple[str, tuple[object, ...]], Group] = {}
    for entry in classes:
        key = (entry.model.key, tuple(o.value for o in entry.options))
        if key in groups:
            groups[key].classes.append(entry)
        else:
            groups[key] = Group(entry.model.key, [entry], entry.options)
    return list(groups.values())


@dataclass
class _Columns:
    z: list[tuple[int, int]]  # (group, option)
    y: list[Give]
    classes: int

    @property
    def size(self) -> int:
        return len(self.z) + len(self.y) + self.classes


def columns(
    groups: list[Group], rooms: dict[str, ModelRoom], demand: list[DemandClass]
) -> _Columns:
    z = [(g, o) for g, group in enumerate(groups) for o in range(len(group.options))]
    keys = sorted(rooms)
    y = [
        (key, name, c)
        for c, entry in enumerate(demand)
        for m, key in enumerate(keys)
        for name in entry.candidates[m]
        if name in rooms[key].names
    ]
    return _Columns(z, y, len(demand))


def _objectives(groups: list[Group], rooms: dict[str, ModelRoom], cols: _Columns) -> list[Any]:
    import numpy as np

    unmet, destroyed, reshaped, memory = (np.zeros(cols.size) for _ in STAGES)
    for j, (g, o) in enumerate(cols.z):
        option = groups[g].options[o]
        destroyed[j] = option.destroyed
        reshaped[j] = 1.0 if option.change else 0.0
    offset = len(cols.z)
    for j, (key, name, _) in enumerate(cols.y):
        profile = next(p for p in rooms[key].profiles if p.name == name)
        memory[offset + j] = profile.memory_slices
    unmet[offset + len(cols.y) :] = 1.0
    return [unmet, destroyed, reshaped, memory]


def _triplets(
    groups: list[Group], rooms: dict[str, ModelRoom], demand: list[DemandClass], cols: _Columns
) -> tuple[list[tuple[int, int, float]], list[float], list[float]]:
    """The constraint matrix as (row, column, value), built in one pass over the columns."""
    cells: list[tuple[int, int, float]] = []
    lower: list[float] = [float(g.count) for g in groups] + [float(d.count) for d in demand]
    upper = list(lower)
    supply_row: dict[tuple[str, int], int] = {}
    for key in sorted(rooms):
        for p in range(len(rooms[key].names)):
            supply_row[(key, p)] = len(lower)
            lower.append(-math.inf)
            upper.append(0.0)
    for j, (g, o) in enumerate(cols.z):
        cells.append((g, j, 1.0))
        for p, amount in enumerate(groups[g].options[o].supply):
            if amount:
                cells.append((supply_row[(groups[g].model_key, p)], j, -float(amount)))
    offset_y, offset_u = len(cols.z), len(cols.z) + len(cols.y)
    for j, (key, name, c) in enumerate(cols.y):
        cells.append((len(groups) + c, offset_y + j, 1.0))
        cells.append((supply_row[(key, rooms[key].names.index(name))], offset_y + j, 1.0))
    for c in range(len(demand)):
        cells.append((len(groups) + c, offset_u + c, 1.0))
    return cells, lower, upper


class FleetModel:
    """The integer program, built once; ``solve`` runs the stages within a time limit."""

    def __init__(
        self, groups: list[Group], rooms: dict[str, ModelRoom], demand: list[DemandClass]
    ) -> None:
        import numpy as np
        from scipy.optimize import Bounds, LinearConstraint
        from scipy.sparse import coo_matrix

        self.groups, self.demand = groups, demand
        self.cols = columns(groups, rooms, demand)
        self.objectives = _objectives(groups, rooms, self.cols)
        cells, lower, upper = _triplets(groups, rooms, demand, self.cols)
        rows, cols, data = zip(*cells, strict=True) if cells else ((), (), ())
        matrix = coo_matrix((data, (rows, cols)), shape=(len(lower), self.cols.size))
        self.constraints = [LinearConstraint(matrix.tocsr(), np.array(lower), np.array(upper))]
        caps = [float(groups[g].count) for g, _ in self.cols.z]
        caps += [float(demand[c].count) for _, _, c in self.cols.y]
        caps += [float(entry.count) for entry in demand]
        self.bounds = Bounds(np.zeros(self.cols.size), np.array(caps))

    def _run(self, objective: Any, integral: bool, time_limit_s: float) -> Any:
        import numpy as np
        from scipy.optimize import milp

        return milp(
            objective,
            integrality=np.full(self.cols.size, 1 if integral else 0),
            bounds=self.bounds,
            constraints=self.constraints,
            options={"time_limit": max(time_limit_s, 0.01), "mip_rel_gap": 0.0},
        )

    def unmet_bound(self, time_limit_s: float) -> int | None:
        """Fewest unmet instances by the LP relaxation, rounded up (a valid lower bound)."""
        if not self.cols.size:
            return 0
        result = self._run(self.objectives[0], integral=False, time_limit_s=time_limit_s)
        if result.status != 0 or result.fun is None:
            return None
        return max(0, math.ceil(float(result.fun) - 1e-6))

    def solve(self, time_limit_s: float) -> Choice | None:
        """Every stage in turn; the last feasible answer (optimal only if all finished)."""
        from scipy.optimize import LinearConstraint

        if not self.cols.size:  # no GPUs and no demand: nothing to decide
            return Choice("milp", True, [], {}, [])
        started = time.perf_counter()
        best, optimal, notes = None, True, []
        for name, objective in zip(STAGES, self.objectives, strict=True):
            left = time_limit_s - (time.perf_counter() - started)
            result = self._run(objective, integral=True, time_limit_s=left)
            if result.x is not None:
                best = result.x
            if result.x is None or result.status != 0:
                notes.append(f"stage {name}: {STATUS_TEXT.get(result.status, result.message)}")
                optimal = False
                break
            self.constraints.append(
                LinearConstraint(objective.reshape(1, -1), -math.inf, round(result.fun) + 1e-6)
            )
        return None if best is None else self._choice(best, optimal, notes)

    def _choice(self, values: Any, optimal: bool, notes: list[str]) -> Choice:
        rounded = [round(float(v)) for v in values]
        counts = [[0] * len(g.options) for g in self.groups]
        for (g, o), value in zip(self.cols.z, rounded, strict=False):
            counts[g][o] = value
        offset = len(self.cols.z)
        given = {
            key: rounded[offset + j] for j, key in enumerate(self.cols.y) if rounded[offset + j]
        }
        unmet = rounded[offset + len(self.cols.y) :]
        return Choice("milp", optimal, counts, given, unmet, notes)
