"""Exact packing: an integer program over layout patterns, solved by HiGHS (scipy.optimize.milp).

Why this exists: to know the best possible packing (and so how far the heuristic is from
it). Variables: x[m,k] = GPUs of model m using pattern k; y[m,p,c] = instances of demand
class c served by profile p on model m; u[c] = unmet instances. Constraints: each class is
served or counted unmet; a model's instances of profile p fit in its patterns' p slots;
at most the model's GPU count. The objectives are lexicographic, solved in stages (each
optimum is fixed as a constraint for the next): fewest unmet instances, fewest GPUs, fewest
memory slices, fewest compute slices. The size depends on patterns and classes only.
scipy (a dependency of migctl) is imported on first use, so that verbs that never pack
do not pay for it at start-up; missing, it is a broken installation and says so
(``migctl.extras``): there is no silent fallback to the heuristic. Imported by
``planner.packing``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from migctl.extras import needed
from migctl.planner.packing_model import Allocation, LabeledState, Problem

STATUS_TEXT = {1: "time or iteration limit", 2: "infeasible", 3: "unbounded", 4: "solver error"}


def _scipy() -> tuple[Any, Any, Any]:
    with needed("the exact planner (HiGHS)", extra=None):
        import numpy as np
        from scipy.optimize import LinearConstraint, milp
    return np, LinearConstraint, milp


@dataclass
class _Layout:
    """Column positions of the variables and the coefficients of each objective."""

    x: list[tuple[int, int]]  # (model, pattern index)
    y: list[tuple[int, str, int]]  # (model, profile name, class)
    u: list[int]  # class

    @property
    def size(self) -> int:
        return len(self.x) + len(self.y) + len(self.u)


def _layout(problem: Problem) -> _Layout:
    x = [(m, k) for m in range(len(problem.models)) for k in range(len(problem.patterns(m)))]
    y = [
        (m, name, c)
        for c, entry in enumerate(problem.classes)
        for m, names in enumerate(entry.candidates)
        for name in names
    ]
    return _Layout(x, y, list(range(len(problem.classes))))


def variable_count(problem: Problem) -> int:
    return _layout(problem).size


def _objectives(problem: Problem, lay: _Layout, np: Any) -> list[tuple[str, Any]]:
    zeros = np.zeros(lay.size)
    unmet, gpus, memory, compute = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    unmet[len(lay.x) + len(lay.y) :] = 1
    gpus[: len(lay.x)] = 1
    for j, (m, name, _) in enumerate(lay.y):
        profile = problem.profile(m, name)
        memory[len(lay.x) + j] = profile.memory_slices
        compute[len(lay.x) + j] = profile.compute_slices
    return [("unmet", unmet), ("gpus", gpus), ("memory", memory), ("compute", compute)]


def _constraints(problem: Problem, lay: _Layout, np: Any) -> tuple[Any, Any, Any]:
    from scipy.sparse import lil_matrix

    rows: list[tuple[dict[int, float], float, float]] = []
    offset_y, offset_u = len(lay.x), len(lay.x) + len(lay.y)
    for c, entry in enumerate(problem.classes):
        row = {offset_y + j: 1.0 for j, (_, _, cc) in enumerate(lay.y) if cc == c}
        row[offset_u + c] = 1.0
        rows.append((row, entry.count, entry.count))
    for m in range(len(problem.models)):
        patterns = problem.patterns(m)
        for name in sorted({n for p in patterns for n in p}):
            row = {offset_y + j: 1.0 for j, (mm, n, _) in enumerate(lay.y) if mm == m and n == name}
            for i, (mm, k) in enumerate(lay.x):
                if mm == m and patterns[k].count(name):
                    row[i] = -float(patterns[k].count(name))
            rows.append((row, -np.inf, 0.0))
        gpu_row = {i: 1.0 for i, (mm, _) in enumerate(lay.x) if mm == m}
        rows.append((gpu_row, 0.0, float(len(problem.gpu_indices[m]))))
    matrix = lil_matrix((len(rows), lay.size))
    for r, (row, _, _) in enumerate(rows):
        for column, value in row.items():
            matrix[r, column] = value
    lower = np.array([lo for _, lo, _ in rows], dtype=float)
    upper = np.array([hi for _, _, hi in rows], dtype=float)
    return matrix.tocsr(), lower, upper


def _bounds(problem: Problem, lay: _Layout, np: Any, unmet_cap: list[int] | None) -> Any:
    from scipy.optimize import Bounds

    upper = [float(len(problem.gpu_indices[m])) for m, _ in lay.x]
    upper += [float(problem.classes[c].count) for _, _, c in lay.y]
    caps = unmet_cap if unmet_cap is not None else [e.count for e in problem.classes]
    upper += [float(min(caps[c], problem.classes[c].count)) for c in lay.u]
    return Bounds(np.zeros(lay.size), np.array(upper))


class _Model:
    def __init__(self, problem: Problem, unmet_cap: list[int] | None) -> None:
        self.np, self.constraint_type, self.milp = _scipy()
        self.problem = problem
        self.lay = _layout(problem)
        self.objectives = _objectives(problem, self.lay, self.np)
        self.matrix, self.lower, self.upper = _constraints(problem, self.lay, self.np)
        self.bounds = _bounds(problem, self.lay, self.np, unmet_cap)
        self.fixed: list[Any] = []

    def solve(self, objective: Any, integral: bool, time_limit_s: float) -> Any:
        constraints = [self.constraint_type(self.matrix, self.lower, self.upper), *self.fixed]
        integrality = self.np.ones(self.lay.size) if integral else self.np.zeros(self.lay.size)
        options = {"time_limit": max(time_limit_s, 0.01), "mip_rel_gap": 0.0, "presolve": True}
        return self.milp(
            objective,
            integrality=integrality,
            bounds=self.bounds,
            constraints=constraints,
            options=options,
        )

    def fix(self, objective: Any, value: float) -> None:
        self.fixed.append(self.constraint_type(objective.reshape(1, -1), -self.np.inf, value))


def lp_gpu_bound(problem: Problem, unmet: list[int], time_limit_s: float = 10.0) -> int | None:
    """Fewest GPUs by LP relaxation for serving all but ``unmet`` per class (rounded up)."""
    if not problem.classes:
        return 0
    model = _Model(problem, unmet)
    result = model.solve(model.objectives[1][1], integral=False, time_limit_s=time_limit_s)
    if result.status != 0 or result.fun is None:
        return None
    return math.ceil(float(result.fun) - 1e-6)


def solve_exact(
    problem: Problem, time_limit_s: float, known_unmet: list[int] | None = None
) -> Allocation | None:
    """Lexicographic optimum, or the best found within the time limit (optimal=False).

    ``known_unmet``: a proven per-class optimum of unmet demand (all zeros when a
    heuristic served everything), which skips the first stage.
    """
    started = time.perf_counter()
    if not problem.classes:  # nothing asked: nothing to solve
        return Allocation("milp", True, [{} for _ in problem.models], [], 0.0)
    model = _Model(problem, known_unmet)
    best, optimal, notes = None, True, []
    stages = model.objectives[1:] if known_unmet is not None else model.objectives
    for name, objective in stages:
        left = time_limit_s - (time.perf_counter() - started)
        result = model.solve(objective, integral=True, time_limit_s=left)
        if result.x is None:
            notes.append(f"stage {name}: {STATUS_TEXT.get(result.status, result.message)}")
            optimal = False
            break
        best = result.x
        if result.status != 0:
            notes.append(f"stage {name}: {STATUS_TEXT.get(result.status, result.message)}")
            optimal = False
            break
        model.fix(objective, float(round(result.fun)) + 1e-6)
    if best is None:
        return None
    states, unmet = _states(problem, model.lay, best)
    return Allocation("milp", optimal, states, unmet, time.perf_counter() - started, notes)


Slots = list[tuple[list[str], list[tuple[str, int]]]]  # per GPU: free slots, (profile, class)


def _states(
    problem: Problem, lay: _Layout, values: Any
) -> tuple[list[dict[LabeledState, int]], list[int]]:
    rounded = [round(float(v)) for v in values]
    x_values = rounded[: len(lay.x)]
    y_values = rounded[len(lay.x) : len(lay.x) + len(lay.y)]
    unmet = rounded[len(lay.x) + len(lay.y) :]
    states: list[dict[LabeledState, int]] = []
    for m in range(len(problem.models)):
        gpus: Slots = []
        for (mm, k), count in zip(lay.x, x_values, strict=True):
            if mm == m:
                gpus.extend((list(problem.patterns(m)[k]), []) for _ in range(count))
        next_free: dict[str, int] = {}
        for (mm, name, c), count in zip(lay.y, y_values, strict=True):
            if mm == m and count:
                _fill(gpus, name, c, count, next_free)
        grouped: dict[LabeledState, int] = {}
        for _, used in gpus:
            if used:
                key = tuple(sorted(used))
                grouped[key] = grouped.get(key, 0) + 1
        states.append(grouped)
    return states, unmet


def _fill(gpus: Slots, name: str, c: int, count: int, next_free: dict[str, int]) -> None:
    """Put ``count`` instances of profile ``name`` for class ``c`` into free slots, in order.

    ``next_free[name]`` remembers the first GPU that may still have a ``name`` slot (slots
    only ever fill up), so filling all GPUs is linear overall.
    """
    index = next_free.get(name, 0)
    while count and index < len(gpus):
        slots, used = gpus[index]
        if name in slots:
            slots.remove(name)
            used.append((name, c))
            count -= 1
        else:
            index += 1
    next_free[name] = index
