"""ParvaGPU serving layouts as one integer program: instance choice and GPU packing together.

Why this exists: ParvaGPU picks one "optimal" configuration per model, then packs the
resulting instances greedily. Choosing instances and packing them are one problem, so
migctl solves them jointly and exactly (HiGHS through ``scipy.optimize.milp``):

* per model and MIG size, the one configuration worth considering is the allowed one with
  the most throughput (same slices, more requests/s dominates); allowed means batch
  latency (ms) < 0.9 x int(SLO) / 2 with 1..``max_procs`` MPS processes (ParvaGPU's rule);
* GPU layouts are migctl.planner's maximal patterns of the A100's profiles (every legal
  layout is a subset of one), or a given list (ParvaGPU's 11 configurations);
* variables: x[k] GPUs using layout k, n[m,s] instances of size s for model m;
  sum_s thr[m,s] n[m,s] >= rate[m]; sum_m n[m,s] <= sum_k slots[k,s] x[k];
  minimise GPUs, then (GPUs fixed) compute slices.

The chosen layouts get NVML placements from ``migctl.planner.place``. Lower bounds: the
LP relaxation and the slice bound (fewest slices per model, alone, over 7).
Imported by ``bench.parvagpu`` and tests.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from bench.parvagpu_data import (
    A100_PROFILE_BY_SIZE,
    Dataset,
    ProfilePoint,
    Scenario,
    Segment,
    Service,
)
from migctl.model import GpuModel
from migctl.planner import place
from migctl.planner.patterns import FitCache, maximal_patterns

SLO_FRACTION = 0.9
# ParvaGPU's scripts/mig_config_set.sh: the only A100 layouts it creates (as sizes).
PARVAGPU_LAYOUTS: tuple[tuple[int, ...], ...] = (
    (7,),
    (4, 3),
    (4, 2, 1),
    (4, 1, 1, 1),
    (3, 2, 2),
    (3, 2, 1, 1),
    (3, 1, 1, 1, 1),
    (2, 2, 2, 1),
    (2, 2, 1, 1, 1),
    (2, 1, 1, 1, 1, 1),
    (1, 1, 1, 1, 1, 1, 1),
)


@dataclass(frozen=True, slots=True)
class Rules:
    max_procs: int = 5  # 1: MIG only, no MPS
    layouts: tuple[tuple[int, ...], ...] | None = None  # None: every legal MIG layout


@dataclass
class Solution:
    scenario: str
    gpus: int  # 0 when infeasible
    slices: int
    segments: tuple[Segment, ...]
    lp_bound: int
    slice_bound: int
    optimal: bool
    seconds: float
    layouts: int
    notes: list[str] = field(default_factory=list)


def allowed(point: ProfilePoint, service: Service, max_procs: int) -> bool:
    limit_ms = SLO_FRACTION * service.slo_ms / 2
    return point.measured and 1 <= point.procs <= max_procs and point.latency_ms < limit_ms


def candidates(data: Dataset, service: Service, max_procs: int) -> dict[int, ProfilePoint]:
    """Per MIG size, the allowed configuration with the most throughput (ties: smaller)."""
    best: dict[int, ProfilePoint] = {}
    for point in data.points(service.model):
        if not allowed(point, service, max_procs):
            continue
        held = best.get(point.size)
        key = (point.throughput, -point.procs, -point.batch)
        if held is None or key > (held.throughput, -held.procs, -held.batch):
            best[point.size] = point
    return dict(sorted(best.items()))


def gpu_layouts(model: GpuModel, rules: Rules) -> list[tuple[int, ...]]:
    """Maximal legal layouts as compute-slice sizes, largest first."""
    if rules.layouts is not None:
        return [tuple(sorted(layout, reverse=True)) for layout in rules.layouts]
    profiles = [p for p in model.gi_profiles if p.name in A100_PROFILE_BY_SIZE.values()]
    by_name = {p.name: p.compute_slices for p in profiles}
    patterns = maximal_patterns(FitCache(model), profiles)
    return sorted(
        (tuple(sorted((by_name[n] for n in pattern), reverse=True)) for pattern in patterns),
        reverse=True,
    )


@dataclass
class _Program:
    layouts: list[tuple[int, ...]]
    columns: list[tuple[str, int, ProfilePoint]]  # (model, size, point) of each n column
    matrix: Any
    lower: Any
    upper: Any
    bounds: Any

    @property
    def width(self) -> int:
        return len(self.layouts) + len(self.columns)


def _program(
    services: Sequence[Service],
    cands: dict[str, dict[int, ProfilePoint]],
    layouts: list[tuple[int, ...]],
) -> _Program:
    columns = [(s.model, size, p) for s in services for size, p in cands[s.model].items()]
    k = len(layouts)
    sizes = sorted({size for _, size, _ in columns})
    matrix = np.zeros((len(services) + len(sizes), k + len(columns)))
    lower, upper = [], []
    for row, service in enumerate(services):
        for j, (model, _, point) in enumerate(columns):
            if model == service.model:
                matrix[row, k + j] = point.throughput
        lower.append(service.rate)
        upper.append(np.inf)
    for offset, size in enumerate(sizes):
        row = len(services) + offset
        for i, layout in enumerate(layouts):
            matrix[row, i] = -layout.count(size)
        for j, (_, col_size, _) in enumerate(columns):
            if col_size == size:
                matrix[row, k + j] = 1.0
        lower.append(-np.inf)
        upper.append(0.0)
    rate = {s.model: s.rate for s in services}
    most = [math.ceil(rate[m] / p.throughput) for m, _, p in columns]
    gpu_cap = max(sum(most), 1)
    ub = np.array([float(gpu_cap)] * k + [float(v) for v in most])
    return _Program(
        layouts,
        columns,
        matrix,
        np.array(lower),
        np.array(upper),
        Bounds(np.zeros(k + len(columns)), ub),
    )


def _solve(program: _Program, cost: Any, integral: bool, extra: list[Any], limit_s: float) -> Any:
    constraints = [LinearConstraint(program.matrix, program.lower, program.upper), *extra]
    return milp(
        cost,
        integrality=np.full(program.width, 1 if integral else 0),
        bounds=program.bounds,
        constraints=constraints,
        options={"time_limit": max(limit_s, 0.01), "mip_rel_gap": 0.0},
    )


def slice_bound(services: Sequence[Service], cands: dict[str, dict[int, ProfilePoint]]) -> int:
    """GPUs needed by compute slices alone: each model's fewest slices, summed, over 7."""
    total = 0
    for service in services:
        items = list(cands[service.model].items())
        thr = np.array([p.throughput for _, p in items])
        cost = np.array([float(size) for size, _ in items])
        most = np.array([math.ceil(service.rate / t) for t in thr], dtype=float)
        result = milp(
            cost,
            integrality=np.ones(len(items)),
            bounds=Bounds(np.zeros(len(items)), most),
            constraints=[LinearConstraint(thr.reshape(1, -1), service.rate, np.inf)],
        )
        total += round(float(result.fun))
    return math.ceil(total / 7 - 1e-9)


def _assign(
    program: _Program, x: list[int], n: list[int]
) -> list[list[tuple[int, str, ProfilePoint]]]:
    """Per GPU: (size, model, point) of each instance, filling layouts' slots in order."""
    gpus: list[list[int]] = []
    for layout, count in zip(program.layouts, x, strict=True):
        gpus.extend(list(layout) for _ in range(count))
    contents: list[list[tuple[int, str, ProfilePoint]]] = [[] for _ in gpus]
    wanted = sorted(
        (
            (size, model, point)
            for (model, size, point), k in zip(program.columns, n, strict=True)
            for _ in range(k)
        ),
        key=lambda item: (-item[0], item[1]),
    )
    for size, model, point in wanted:
        index = next(i for i, free in enumerate(gpus) if size in free)
        gpus[index].remove(size)
        contents[index].append((size, model, point))
    return [c for c in contents if c]


def _placed(
    model: GpuModel, gpu: int, content: list[tuple[int, str, ProfilePoint]]
) -> list[Segment]:
    profiles = [model.gi_profile(A100_PROFILE_BY_SIZE[size]) for size, _, _ in content]
    occupants = place(model, [p for p in profiles if p is not None])
    assert occupants is not None, "a sub-layout of a legal layout is legal"
    starts: dict[str, list[int]] = {}
    for occupant in sorted(occupants, key=lambda o: o.placement.start):
        starts.setdefault(occupant.profile.name, []).append(occupant.placement.start)
    segments = []
    for size, name, point in sorted(content, key=lambda c: (-c[0], c[1])):
        start = starts[A100_PROFILE_BY_SIZE[size]].pop(0)
        segments.append(Segment(gpu, name, size, point.batch, point.procs, start))
    return sorted(segments, key=lambda s: (s.gpu, s.start or 0))


def solve(
    data: Dataset,
    scenario: Scenario,
    model: GpuModel,
    rules: Rules | None = None,
    time_limit_s: float = 60.0,
) -> Solution:
    """Fewest GPUs (then slices) serving every model of ``scenario`` within its SLO."""
    started = time.perf_counter()
    rules = rules or Rules()
    cands = {s.model: candidates(data, s, rules.max_procs) for s in scenario.services}
    layouts = gpu_layouts(model, rules)
    missing = [m for m, c in cands.items() if not c]
    if missing:
        return Solution(
            scenario.name,
            0,
            0,
            (),
            0,
            0,
            False,
            time.perf_counter() - started,
            len(layouts),
            [f"no allowed configuration for {', '.join(missing)}"],
        )
    program = _program(scenario.services, cands, layouts)
    k = len(layouts)
    gpu_cost = np.array([1.0] * k + [0.0] * len(program.columns))
    first = _solve(program, gpu_cost, True, [], time_limit_s)
    if first.x is None:
        return Solution(
            scenario.name,
            0,
            0,
            (),
            0,
            0,
            False,
            time.perf_counter() - started,
            len(layouts),
            [f"no solution: {first.message}"],
        )
    relaxed = _solve(program, gpu_cost, False, [], time_limit_s)
    lp = math.ceil(float(relaxed.fun) - 1e-6)
    slice_cost = np.array([0.0] * k + [float(size) for _, size, _ in program.columns])
    fixed = LinearConstraint(gpu_cost.reshape(1, -1), -np.inf, round(float(first.fun)) + 1e-6)
    second = _solve(program, slice_cost, True, [fixed], time_limit_s)
    best = second.x if second.x is not None else first.x
    values = [round(float(v)) for v in best]
    contents = _assign(program, values[:k], values[k:])
    segments = [seg for gpu, c in enumerate(contents) for seg in _placed(model, gpu, c)]
    return Solution(
        scenario=scenario.name,
        gpus=len(contents),
        slices=sum(s.size for s in segments),
        segments=tuple(segments),
        lp_bound=lp,
        slice_bound=slice_bound(scenario.services, cands),
        optimal=first.status == 0 and second.status == 0,
        seconds=time.perf_counter() - started,
        layouts=len(layouts),
    )


def size_mix(segments: Sequence[Segment]) -> str:
    counts = Counter(s.size for s in segments)
    return ", ".join(f"{size}g: {counts[size]}" for size in sorted(counts))
