"""Packing many GPUs: assign demands to GPUs and layouts, exactly or fast, with a bound.

Why this exists: a service placing workloads, a fleet simulator and the benchmarks
(ParvaGPU serving layouts, the Alibaba trace) all ask "given these GPUs and these
demands, which layout on which GPU?". ``pack`` answers with every GPU's instances and
placements, the unmet demand, the objective (unmet, GPUs, memory and compute slices,
lexicographic), a lower bound on GPUs and how it was solved:

* ``exact``: integer program over layout patterns (``packing_milp``), optimal unless the
  time limit cuts it short (then ``optimal`` is False);
* ``heuristic``: best-fit decreasing over groups of identical GPUs (``packing_greedy``);
* ``auto`` (default): the heuristic, then the exact model when it is small enough, and
  the better of the two.

A demand is "``count`` instances of any profile in a set" (named profiles, or a size
requirement such as memory or compute share). Pure; imported by intent_instances, engine, service.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InvalidInputError
from migctl.geometry import Occupant
from migctl.model import GpuModel, Placement
from migctl.planner.packing_greedy import greedy, rank
from migctl.planner.packing_milp import (
    lp_gpu_bound,
    solve_exact,
    variable_count,
)
from migctl.planner.packing_model import (
    Allocation,
    Demand,
    LabeledState,
    Problem,
    build_problem,
)
from migctl.planner.profiles import placed_on_empty

__all__ = [
    "Demand",
    "GpuLayout",
    "Objective",
    "PackComparison",
    "PackResult",
    "PackedInstance",
    "compare_methods",
    "pack",
]

METHODS = ("auto", "exact", "heuristic")
MAX_EXACT_VARIABLES = 20_000


@dataclass(frozen=True, slots=True, order=True)
class Objective:
    """Lexicographic cost: unmet instances, GPUs used, memory slices, compute slices."""

    unmet: int
    gpus: int
    memory_slices: int
    compute_slices: int

    def to_dict(self) -> dict[str, int]:
        return {
            "unmet": self.unmet,
            "gpus": self.gpus,
            "memory_slices": self.memory_slices,
            "compute_slices": self.compute_slices,
        }


@dataclass(frozen=True, slots=True)
class PackedInstance:
    profile: str
    placement: Placement
    demand: int  # index into the demands given to ``pack``


@dataclass(frozen=True, slots=True)
class GpuLayout:
    gpu_index: int
    model_key: str
    instances: tuple[PackedInstance, ...]  # by placement

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu_index,
            "model": self.model_key,
            "instances": [
                {"profile": i.profile, "placement": str(i.placement), "demand": i.demand}
                for i in self.instances
            ],
        }


@dataclass(frozen=True, slots=True)
class PackResult:
    method: str  # "milp" or "greedy"
    optimal: bool  # proven optimal (the exact method finished)
    layouts: tuple[GpuLayout, ...]  # GPUs that hold instances, by GPU index
    unmet: tuple[int, ...]  # per demand: instances that found no room
    objective: Objective
    lower_bound_gpus: int
    solve_time_s: float
    patterns: int
    notes: tuple[str, ...] = ()

    @property
    def gap_gpus(self) -> int:
        """GPUs above the lower bound (0: provably optimal in GPUs)."""
        return self.objective.gpus - self.lower_bound_gpus

    def to_dict(self, include_timing: bool = True) -> dict[str, object]:
        """JSON-ready; without timing it is identical for identical inputs."""
        result: dict[str, object] = {
            "method": self.method,
            "optimal": self.optimal,
            "objective": self.objective.to_dict(),
            "lower_bound_gpus": self.lower_bound_gpus,
            "gap_gpus": self.gap_gpus,
            "patterns": self.patterns,
            "unmet": list(self.unmet),
            "notes": list(self.notes),
            "layouts": [layout.to_dict() for layout in self.layouts],
        }
        if include_timing:
            result["solve_time_s"] = round(self.solve_time_s, 6)
        return result


@dataclass(frozen=True, slots=True)
class PackComparison:
    exact: PackResult | None  # None when the exact model found nothing in time
    heuristic: PackResult
    lower_bound_gpus: int

    @property
    def gap_gpus(self) -> int | None:
        """Heuristic GPUs minus exact GPUs (both meeting the same demand), if known."""
        if self.exact is None or self.exact.objective.unmet != self.heuristic.objective.unmet:
            return None
        return self.heuristic.objective.gpus - self.exact.objective.gpus


def _slice_bound(problem: Problem, unmet: list[int]) -> int:
    """GPUs needed by memory slices alone, on the roomiest model (a valid lower bound)."""
    need = 0.0
    for entry, left in zip(problem.classes, unmet, strict=True):
        shares = [
            problem.profile(m, names[0]).memory_slices / (problem.models[m].memory_slices or 1)
            for m, names in enumerate(entry.candidates)
            if names
        ]
        need += (entry.count - left) * min(shares, default=0.0)
    return math.ceil(need - 1e-9)


def _lower_bound(problem: Problem, unmet: list[int], use_lp: bool) -> int:
    bound = _slice_bound(problem, unmet)
    if use_lp:
        lp = lp_gpu_bound(problem, unmet)
        if lp is not None:
            bound = max(bound, lp)
    return bound


def _label_instances(
    occupants: Sequence[Occupant], state: LabeledState, left: list[list[tuple[int, int]]]
) -> tuple[PackedInstance, ...]:
    """Attach to each placed instance the demand it serves (demands taken in order)."""
    labels = sorted(state)
    instances = []
    for occupant in occupants:
        slot = next(i for i, (name, _) in enumerate(labels) if name == occupant.profile.name)
        _, class_index = labels.pop(slot)
        demand = _take(left[class_index])
        instances.append(PackedInstance(occupant.profile.name, occupant.placement, demand))
    return tuple(instances)


def _expand(problem: Problem, allocation: Allocation) -> tuple[list[GpuLayout], list[int]]:
    """Give each labelled GPU state real GPU indices, placements and demand indices."""
    left = [list(entry.members) for entry in problem.classes]
    layouts: list[GpuLayout] = []
    for m, states in enumerate(allocation.states):
        model = problem.models[m]
        indices = iter(problem.gpu_indices[m])
        for state in sorted(states, key=lambda s: (-len(s), s)):
            occupants = placed_on_empty(model, tuple(sorted(name for name, _ in state)))
            assert occupants is not None  # every state was checked to fit
            for _ in range(states[state]):
                instances = _label_instances(occupants, state, left)
                layouts.append(GpuLayout(next(indices), model.key, instances))
    unmet = [0] * problem.demand_count
    for members in left:
        for demand_index, count in members:
            unmet[demand_index] += count
    layouts.sort(key=lambda layout: layout.gpu_index)
    return layouts, unmet


def _take(members: list[tuple[int, int]]) -> int:
    demand_index, count = members[0]
    if count == 1:
        members.pop(0)
    else:
        members[0] = (demand_index, count - 1)
    return demand_index


def _objective(problem: Problem, layouts: Sequence[GpuLayout], unmet: Sequence[int]) -> Objective:
    memory = compute = 0
    by_key = {m.key: i for i, m in enumerate(problem.models)}
    for layout in layouts:
        m = by_key[layout.model_key]
        for instance in layout.instances:
            profile = problem.profile(m, instance.profile)
            memory += profile.memory_slices
            compute += profile.compute_slices
    return Objective(sum(unmet), len(layouts), memory, compute)


def _result(problem: Problem, allocation: Allocation, bound: int, seconds: float) -> PackResult:
    layouts, unmet = _expand(problem, allocation)
    patterns = sum(len(problem.patterns(m)) for m in range(len(problem.models)))
    return PackResult(
        method=allocation.method,
        optimal=allocation.optimal,
        layouts=tuple(layouts),
        unmet=tuple(unmet),
        objective=_objective(problem, layouts, unmet),
        lower_bound_gpus=bound,
        solve_time_s=seconds,
        patterns=patterns,
        notes=tuple(allocation.notes),
    )


def _solve(
    problem: Problem, method: str, time_limit_s: float
) -> tuple[Allocation, Allocation | None]:
    heuristic = greedy(problem)
    if method == "heuristic":
        return heuristic, None
    if method == "auto" and variable_count(problem) > MAX_EXACT_VARIABLES:
        heuristic.notes.append("exact model too large; heuristic only")
        return heuristic, None
    known = [0] * len(problem.classes) if not any(heuristic.unmet) else None
    return heuristic, solve_exact(problem, time_limit_s, known)


def pack(
    gpus: Sequence[GpuModel],
    demands: Sequence[Demand],
    *,
    method: str = "auto",
    time_limit_s: float = 10.0,
) -> PackResult:
    """Pack ``demands`` onto ``gpus`` (``gpus[i]`` is the model of GPU index i).

    Minimises, in order: unmet instances, GPUs used, memory slices, compute slices.
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown packing method {method!r}", hint=f"one of {METHODS}")
    started = time.perf_counter()
    problem = build_problem(gpus, demands)
    heuristic, exact = _solve(problem, method, time_limit_s)
    chosen = heuristic
    if exact is not None:
        chosen = exact
        if not exact.optimal and rank(problem, heuristic) < rank(problem, exact):
            heuristic.notes.extend([*exact.notes, "the heuristic beat the unfinished exact model"])
            chosen = heuristic
    elif method == "exact":
        heuristic.notes.append(f"the exact model found no solution in {time_limit_s} s")
    bound = _lower_bound(problem, chosen.unmet, use_lp=method != "heuristic")
    return _result(problem, chosen, bound, time.perf_counter() - started)


def compare_methods(
    gpus: Sequence[GpuModel], demands: Sequence[Demand], *, time_limit_s: float = 30.0
) -> PackComparison:
    """Run both methods on the same problem and report them with a common lower bound."""
    problem = build_problem(gpus, demands)
    started = time.perf_counter()
    heuristic_alloc = greedy(problem)
    heuristic_seconds = time.perf_counter() - started
    known = [0] * len(problem.classes) if not any(heuristic_alloc.unmet) else None
    exact_alloc = solve_exact(problem, time_limit_s, known)
    reference = exact_alloc if exact_alloc is not None else heuristic_alloc
    bound = _lower_bound(problem, reference.unmet, use_lp=True)
    heuristic = _result(problem, heuristic_alloc, bound, heuristic_seconds)
    exact = None
    if exact_alloc is not None:
        exact = _result(problem, exact_alloc, bound, exact_alloc.seconds)
    return PackComparison(exact, heuristic, bound)
