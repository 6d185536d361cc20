"""Independent checker of a serving deployment against the ParvaGPU rules and MIG geometry.

Why this exists: a benchmark that reports "fewer GPUs" must prove that every deployment
it counts is legal and meets every SLO. This module shares no code with the solver
(``bench.parvagpu_solve``): it re-reads each segment's configuration from the profile
data and re-applies the rules one by one:

* the segment's (model, size, batch, processes) was measured (throughput > 0) and uses
  1 to ``max_procs`` processes;
* its batch latency (ms) < 0.9 x int(SLO) / 2 (ParvaGPU's rule);
* the model belongs to the scenario, and the segments of each model serve at least its
  request rate (throughput x processes, summed);
* every GPU's instances are a legal MIG layout: with NVML starts, each instance is
  checked in turn by ``migctl.geometry.placement_refusal``; without them (ParvaGPU's
  files), the multiset must have some legal placement (exhaustive search).

Imported by ``bench.parvagpu`` and tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.parvagpu_data import A100_PROFILE_BY_SIZE, Dataset, Scenario, Segment
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GpuModel, Placement
from migctl.planner import place

SLO_FRACTION = 0.9


@dataclass
class CheckReport:
    gpus: int
    slices: int  # compute slices of all instances
    served: dict[str, float]  # requests/s per model
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _segment_problems(data: Dataset, scenario: Scenario, seg: Segment, max_procs: int) -> list[str]:
    where = f"GPU {seg.gpu} {seg.model} {seg.size}g b{seg.batch} p{seg.procs}"
    service = next((s for s in scenario.services if s.model == seg.model), None)
    if service is None:
        return [f"{where}: {seg.model} is not part of {scenario.name}"]
    if not 1 <= seg.procs <= max_procs:
        return [f"{where}: {seg.procs} processes (allowed 1..{max_procs})"]
    rows = [
        p
        for p in data.points(seg.model)
        if (p.size, p.batch, p.procs) == (seg.size, seg.batch, seg.procs)
    ]
    if len(rows) != 1 or rows[0].throughput_per_proc <= 0:
        return [f"{where}: no measured profile row"]
    limit_ms = SLO_FRACTION * service.slo_ms / 2
    if not rows[0].latency_s * 1000.0 < limit_ms:
        return [f"{where}: latency {rows[0].latency_s * 1000:.1f} ms >= {limit_ms:.1f} ms"]
    return []


def _throughput(data: Dataset, seg: Segment) -> float:
    for p in data.points(seg.model):
        if (p.size, p.batch, p.procs) == (seg.size, seg.batch, seg.procs):
            return p.throughput_per_proc * p.procs
    return 0.0


def _layout_problems(model: GpuModel, gpu: int, segments: Sequence[Segment]) -> list[str]:
    profiles = []
    for seg in segments:
        profile = model.gi_profile(A100_PROFILE_BY_SIZE.get(seg.size, f"{seg.size}g?"))
        if profile is None:
            return [f"GPU {gpu}: no {seg.size}g profile on {model.name}"]
        profiles.append(profile)
    if any(seg.start is None for seg in segments):
        if place(model, profiles) is None:
            sizes = "+".join(str(s.size) for s in sorted(segments, key=lambda s: -s.size))
            return [f"GPU {gpu}: no legal MIG layout holds {sizes}g"]
        return []
    current: list[Occupant] = []
    for seg, profile in zip(segments, profiles, strict=True):
        assert seg.start is not None
        placement = Placement(seg.start, profile.memory_slices)
        refusal = placement_refusal(model, profile, placement, current)
        if refusal is not None:
            return [f"GPU {gpu}: {refusal}"]
        current.append(Occupant(profile, placement))
    return []


def check_deployment(
    data: Dataset,
    scenario: Scenario,
    segments: Sequence[Segment],
    model: GpuModel,
    *,
    max_procs: int = 5,
) -> CheckReport:
    """Every rule above, for one scenario's deployment; ``ok`` when nothing is violated."""
    by_gpu: dict[int, list[Segment]] = defaultdict(list)
    served: dict[str, float] = {s.model: 0.0 for s in scenario.services}
    violations: list[str] = []
    for seg in segments:
        by_gpu[seg.gpu].append(seg)
        problems = _segment_problems(data, scenario, seg, max_procs)
        violations.extend(problems)
        if not problems:
            served[seg.model] += _throughput(data, seg)
    for gpu in sorted(by_gpu):
        violations.extend(_layout_problems(model, gpu, by_gpu[gpu]))
    for service in scenario.services:
        if served[service.model] < service.rate:
            violations.append(
                f"{service.model}: serves {served[service.model]:.1f} < {service.rate:g} req/s"
            )
    slices = sum(seg.size for seg in segments)
    return CheckReport(len(by_gpu), slices, served, violations)
