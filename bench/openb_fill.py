"""FGD's (ATC'23) "fill until full" measurement of the openb trace, with MIG or fractions.

Why this exists: FGD's published allocation ratios (random 86.3%, best-fit 92.9%, FGD
95.2%, fractional GPU sharing) are measured this way, checked in its simulator's code:
the pods (CPU-only ones too) are shuffled with a seed, the list is topped up with random
repeats to 1.3x its length (GPU demand ~127% of capacity), none depart, and the ratio of
requested GPU milli allocated to GPU capacity is read when the GPU demand that has
arrived reaches 100% of capacity. The fleet is the trace's 1,213 nodes (CPU, memory, GPU
count) with every GPU replaced by one MIG-capable model. With MIG two numbers differ:
``useful`` (requested milli of placed pods / capacity, FGD's ratio) and ``slices``
(compute slices allocated / all slices); the gap is MIG's rounding tax. What MIG could
reach at best with the same arrivals is ``bench.openb_optimum``.
Imported by ``bench.openb`` and tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.fleet import Fleet, NodeShape
from bench.frag import NodeFrag
from bench.gpu_rules import GpuRules
from bench.openb_data import NodeSpec, Pod, Request

INFLATION = 1.3


@dataclass(frozen=True, slots=True)
class FillResult:
    seed: int
    policy: str
    useful: float  # requested milli of placed pods / capacity milli
    slices: float  # allocated units / capacity units (compute slices with MIG)
    arrived_pods: int
    rejected_gpu_pods: int  # GPU pods refused before the reading


def arrival_order(pods: Sequence[Pod], seed: int) -> list[Pod]:
    """Shuffled with ``seed``, then topped up with random repeats to 1.3x the length."""
    rng = random.Random(seed)
    order = list(pods)
    rng.shuffle(order)
    extra = math.ceil(len(order) * INFLATION) - len(order)
    return order + [order[rng.randrange(len(order))] for _ in range(extra)]


def fill(
    pods: Sequence[Pod],
    requests: dict[str, Request],
    nodes: Sequence[NodeSpec],
    rules: GpuRules,
    *,
    policy: str,
    seed: int,
    frag: NodeFrag | None = None,
) -> FillResult:
    """One FGD-style run; ``requests`` maps pod name to its request under ``rules``."""
    shapes = [NodeShape(n.cpu_milli, n.memory_mib, n.gpus) for n in nodes]
    fleet = Fleet(shapes, rules, policy, seed, frag)
    capacity_milli = 1000 * sum(n.gpus for n in nodes)
    arrived = placed_milli = rejected = count = 0
    for pod in arrival_order(pods, seed):
        count += 1
        arrived += pod.requested_milli
        granted = fleet.place(pod.cpu_milli, pod.memory_mib, requests[pod.name])
        if granted is not None:
            placed_milli += pod.requested_milli
        elif pod.requested_milli:
            rejected += 1
        if arrived >= capacity_milli:
            break
    return FillResult(
        seed,
        policy,
        placed_milli / capacity_milli,
        fleet.used_units / fleet.capacity_units,
        count,
        rejected,
    )


def arrived_by_reading(pods: Sequence[Pod], gpus: int, seed: int) -> list[Pod]:
    """The pods of a run up to the reading (arrived GPU demand reaches the capacity)."""
    arrived, result = 0, []
    for pod in arrival_order(pods, seed):
        result.append(pod)
        arrived += pod.requested_milli
        if arrived >= 1000 * gpus:
            break
    return result
