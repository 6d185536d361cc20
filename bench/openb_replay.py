"""Replay of the openb trace by creation and deletion time on a MIG fleet sized to its peak.

Why this exists: "fill until full" never frees anything; a real cluster does. This replays
the trace's GPU pods in time order (deletions first at equal times) on nodes of 8 MIG
GPUs (the last node may have fewer; CPU and memory are not limited: the fleet is
synthetic), with the policies of ``bench.fleet``. A pod that finds no room is rejected and
never retried; placed pods never move. Two fleets: one sized to the peak of concurrent
requested demand (rounded up to a whole GPU), which shows rejections, and one large enough
that nothing is rejected, which shows how many GPUs each policy needs. ``offline_gpus``
packs the pods alive at a moment with ``migctl.planner.pack`` (exact): the fewest GPUs any
placement could use then (a lower bound, even for a scheduler that migrates).
Imported by ``bench.openb`` and tests.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.fleet import Fleet, Granted, NodeShape
from bench.frag import NodeFrag
from bench.gpu_rules import GpuRules
from bench.openb_data import Pod, Request
from migctl.model import GpuModel
from migctl.planner import Demand, pack

GPUS_PER_NODE = 8
UNLIMITED = 10**12


@dataclass
class ReplayResult:
    policy: str
    fleet_gpus: int
    accepted: int = 0
    rejected: int = 0
    rejected_milli: int = 0
    peak_busy_gpus: int = 0
    gpus_touched: int = 0  # highest GPU index used + 1 (GPUs are taken in index order)
    times_s: list[int] = field(default_factory=list)
    used_units: list[int] = field(default_factory=list)
    placed_milli: list[int] = field(default_factory=list)
    busy_gpus: list[int] = field(default_factory=list)


def gpu_pods(pods: Sequence[Pod]) -> list[Pod]:
    """GPU pods that live for some time."""
    return [p for p in pods if p.requested_milli and p.deletion_s > p.creation_s]


def events(pods: Sequence[Pod]) -> list[tuple[int, int, int]]:
    """(time, 0 = deletion / 1 = creation, pod index), in replay order."""
    found = [(p.creation_s, 1, i) for i, p in enumerate(pods)]
    found += [(p.deletion_s, 0, i) for i, p in enumerate(pods)]
    return sorted(found)


def peak_requested_gpus(pods: Sequence[Pod]) -> float:
    """Most GPUs asked for at once (sum of gpu_milli of live pods / 1000)."""
    live = peak = 0
    for _, created, index in events(pods):
        live += pods[index].requested_milli if created else -pods[index].requested_milli
        peak = max(peak, live)
    return peak / 1000


def fleet_for_peak(pods: Sequence[Pod]) -> int:
    """GPUs of the peak-sized fleet: the requested peak, rounded up to a whole GPU."""
    return math.ceil(peak_requested_gpus(pods) - 1e-9)


def replay(
    pods: Sequence[Pod],
    requests: dict[str, Request],
    rules: GpuRules,
    *,
    policy: str,
    gpus: int,
    frag: NodeFrag | None = None,
) -> ReplayResult:
    full, rest = divmod(gpus, GPUS_PER_NODE)
    sizes = [GPUS_PER_NODE] * full + ([rest] if rest else [])
    nodes = [NodeShape(UNLIMITED, UNLIMITED, size) for size in sizes]
    fleet = Fleet(nodes, rules, policy, 0, frag)
    result = ReplayResult(policy, gpus)
    held: dict[int, Granted] = {}
    placed = 0
    for time_s, created, index in events(pods):
        pod = pods[index]
        if not created:
            granted = held.pop(index, None)
            if granted is not None:
                fleet.release(granted)
                placed -= pod.requested_milli
        else:
            granted = fleet.place(pod.cpu_milli, pod.memory_mib, requests[pod.name])
            if granted is None:
                result.rejected += 1
                result.rejected_milli += pod.requested_milli
                continue
            held[index] = granted
            placed += pod.requested_milli
            result.accepted += 1
        _sample(result, fleet, time_s, placed)
    result.gpus_touched = fleet.highest_gpu + 1
    return result


def _sample(result: ReplayResult, fleet: Fleet, time_s: int, placed_milli: int) -> None:
    result.times_s.append(time_s)
    result.used_units.append(fleet.used_units)
    result.placed_milli.append(placed_milli)
    result.busy_gpus.append(fleet.busy_gpus)
    result.peak_busy_gpus = max(result.peak_busy_gpus, fleet.busy_gpus)


def live_profiles(pods: Sequence[Pod], requests: dict[str, Request], moment_s: int) -> Counter[str]:
    """MIG profiles of the pods alive at ``moment_s`` (a k-GPU pod counts k whole GPUs)."""
    counts: Counter[str] = Counter()
    for pod in pods:
        if pod.creation_s <= moment_s < pod.deletion_s:
            request = requests[pod.name]
            if request.kind == "share":
                counts[str(request.share)] += 1
            elif request.kind == "whole":
                counts["whole"] += request.gpus
    return counts


def offline_gpus(
    pods: Sequence[Pod],
    requests: dict[str, Request],
    model: GpuModel,
    whole_profile: str,
    moments_s: Sequence[int],
) -> list[int]:
    """Per moment: fewest GPUs holding every live pod (migctl.planner.pack, exact)."""
    result = []
    for moment in moments_s:
        counts = live_profiles(pods, requests, moment)
        counts[whole_profile] += counts.pop("whole", 0)
        demands = [Demand(k, (name,)) for name, k in sorted(counts.items())]
        fleet = [model] * max(1, sum(counts.values()))
        packed = pack(fleet, demands, method="exact", time_limit_s=20.0)
        result.append(packed.objective.gpus)
    return result


def busiest_moments(
    pods: Sequence[Pod], requests: dict[str, Request], rules: GpuRules, count: int
) -> list[int]:
    """The ``count`` moments (creation times) with the most MIG slices alive."""
    live, seen = 0, []
    for time_s, created, index in events(pods):
        request = requests[pods[index].name]
        if request.kind == "whole":
            units = rules.units * request.gpus
        else:
            units = rules.units_of(request.share) if request.kind == "share" else 0
        live += units if created else -units
        if created:
            seen.append((live, time_s))
    best: dict[int, int] = {}
    for units, time_s in seen:
        best[time_s] = units  # the last event at a time is the state after it
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return sorted(t for t, _ in ranked[:count])
