"""Fleets in varied real-looking states, seeded from the Alibaba openb trace.

Why this exists: the fleet planner's cost depends on how many distinct GPU states a fleet
holds, so its benchmark needs fleets where every GPU looks lived-in. Each GPU is filled
with pods drawn from the trace's share pods (``gpu_milli`` < 1000 -> the smallest MIG
profile covering that compute share), each placed where
the planner's ``place`` puts it beside the earlier ones, up to a random fill level; each
instance is busy (its pod still runs) with probability ``busy``, else idle (its pod ended
and the slice stayed). The waiting demand is another draw from all the trace's GPU pods
(whole-GPU pods, most of the trace, ask the full-GPU profile). GPU
models take turns (H100 80GB and A100-SXM4-40GB, or five models) so that several
geometries appear.
Deterministic for a seed. Imported by ``bench.fleet_plan_scale`` and tests.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.openb_data import Pod, load_pods, mig_profile
from migctl.catalog import load_catalog
from migctl.geometry import Occupant
from migctl.model import GpuModel
from migctl.planner import place
from migctl.planner.fleet import Demand, FleetGpu, FleetInstance
from migctl.planner.profiles import resolve_profile

MODEL_KEYS = ("h100-80gb-hbm3", "a100-sxm4-40gb")
MIXED_KEYS = ("h100-80gb-hbm3", "h200-141gb", "a100-sxm4-80gb", "a100-sxm4-40gb", "a30-24gb")


def gpu_pods(data: Path) -> list[Pod]:
    """The trace's pods that use a GPU (``data`` is the alibaba-openb directory)."""
    return [p for p in load_pods(data) if p.num_gpu and p.gpu_milli]


def share_pods(pods: Sequence[Pod]) -> list[Pod]:
    """Pods asking a share of one GPU (they give GPUs their varied layouts)."""
    return [p for p in pods if p.num_gpu == 1 and p.gpu_milli < 1000]


def fleet_models(keys: Sequence[str] = MODEL_KEYS) -> list[GpuModel]:
    catalog = load_catalog()
    return [catalog.get(key) for key in keys]


def _fill(model: GpuModel, pods: Sequence[Pod], rng: random.Random) -> list[Occupant]:
    level = rng.random() * (model.memory_slices or 8)
    occupants: list[Occupant] = []
    misses = 0
    while sum(o.placement.size for o in occupants) < level and misses < 3:
        pod = pods[rng.randrange(len(pods))]
        profile = resolve_profile(model, mig_profile(model, pod.gpu_milli))
        placed = place(model, [profile], occupants)
        if placed is None:
            misses += 1
            continue
        occupants.extend(placed)
    return occupants


def fleet(
    n: int,
    pods: Sequence[Pod],
    models: Sequence[GpuModel],
    *,
    seed: int = 1,
    busy: float = 0.6,
) -> list[FleetGpu]:
    """``n`` GPUs on hosts of 8 (models in turn), each in a state drawn from share pods."""
    rng = random.Random(seed)
    pods = share_pods(pods)
    gpus = []
    for position in range(n):
        model = models[position % len(models)]
        occupants = _fill(model, pods, rng)
        instances = tuple(
            FleetInstance(o.profile.name, o.placement, rng.random() < busy, gi_id=k + 1)
            for k, o in enumerate(sorted(occupants, key=lambda o: o.placement.start))
        )
        gpus.append(FleetGpu(f"host-{position // 8:05d}", position % 8, model, instances))
    return gpus


def waiting_demand(
    count: int, pods: Sequence[Pod], models: Sequence[GpuModel], *, seed: int = 2
) -> list[Demand]:
    """``count`` waiting pods drawn from the trace, as demands naming each model's profile."""
    rng = random.Random(seed)
    counts: Counter[tuple[str, ...]] = Counter()
    for _ in range(count):
        pod = pods[rng.randrange(len(pods))]
        counts[tuple(sorted({mig_profile(m, pod.gpu_milli) for m in models}))] += 1
    return [Demand(k, names, label="|".join(names)) for names, k in sorted(counts.items())]
