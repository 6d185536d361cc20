"""Request traces and initial layouts for the repartitioning benchmark.

Why this exists: ``bench/repartition_replay.py`` compares static and dynamic MIG layouts on
the same traces; this module makes them, seeded and reproducible:

* ``synthetic``: Poisson arrivals, a mix of size classes in GiB typical of inference
  (small/medium) and fine-tuning/training (large/xl), exponential durations per class;
* ``phased``: the same classes, but the mix swings between inference-heavy and
  training-heavy phases (what a static layout tuned for the average cannot follow);
* ``openb``: single-GPU pods of the Alibaba openb trace (creation/deletion times; ``gpu_milli``
  as a share of an H100's SMs), arrivals compressed to the target load, durations kept.

Offered load = arrival rate x mean duration x memory slices of each request's smallest
H100 profile, over the machine's memory slices. Imported only by ``bench/``.
"""

from __future__ import annotations

import csv
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner import Demand, Requirement, pack, place
from migctl.repartition import creatable_profiles
from migctl.repartition.replay import TraceRequest

GIB = 1024
Layout = list[tuple[str, Placement]]


@dataclass(frozen=True)
class SizeClass:
    name: str
    low_gib: int
    high_gib: int
    mean_duration_s: float


CLASSES = (
    SizeClass("small (4-9 GiB)", 4, 9, 900.0),
    SizeClass("medium (11-19 GiB)", 11, 19, 1800.0),
    SizeClass("large (22-39 GiB)", 22, 39, 3600.0),
    SizeClass("xl (45-78 GiB)", 45, 78, 7200.0),
)
STEADY_MIX = (0.50, 0.25, 0.17, 0.08)
INFERENCE_MIX = (0.70, 0.22, 0.06, 0.02)
TRAINING_MIX = (0.25, 0.15, 0.30, 0.30)


@dataclass
class Trace:
    name: str
    requests: list[TraceRequest]
    classes: dict[str, str]  # request id -> class label
    needs: dict[str, Requirement]  # class label -> requirement (for the tuned static layout)
    load: float  # offered load on the machine it was made for
    note: str = ""


def slices_needed(model: GpuModel, request: TraceRequest) -> int:
    profiles = creatable_profiles(model, request.request())
    return profiles[0].memory_slices if profiles else 0


def offered_load(model: GpuModel, requests: Sequence[TraceRequest], gpus: int) -> float:
    if len(requests) < 2:
        return 0.0
    span = requests[-1].arrival_s - requests[0].arrival_s
    work = sum(r.duration_s * slices_needed(model, r) for r in requests)
    return work / (span * gpus * (model.memory_slices or 8))


def _class_requests(
    rng: random.Random, count: int, mix: Sequence[float], *, start_s: float, rate: float, first: int
) -> list[tuple[TraceRequest, str]]:
    out, now = [], start_s
    for index in range(first, first + count):
        now += rng.expovariate(rate)
        size = rng.choices(CLASSES, weights=mix)[0]
        memory = rng.randint(size.low_gib, size.high_gib) * GIB
        duration = rng.expovariate(1 / size.mean_duration_s)
        priority = 1 if rng.random() < 0.1 else 0
        item = TraceRequest(f"r{index}", now, duration, memory_mib=memory, priority=priority)
        out.append((item, size.name))
    return out


def _rate(model: GpuModel, mix: Sequence[float], gpus: int, load: float) -> float:
    """Arrivals per second giving ``load`` with this mix (class midpoints' smallest profile)."""
    work = 0.0
    for share, size in zip(mix, CLASSES, strict=True):
        middle = TraceRequest("x", 0.0, 1.0, memory_mib=(size.low_gib + size.high_gib) // 2 * GIB)
        work += share * size.mean_duration_s * slices_needed(model, middle)
    return load * gpus * (model.memory_slices or 8) / work


def _trace(name: str, items: list[tuple[TraceRequest, str]], model: GpuModel, gpus: int) -> Trace:
    needs = {c.name: Requirement(memory_mib=c.high_gib * GIB) for c in CLASSES}
    requests = [r for r, _ in items]
    return Trace(
        name, requests, {r.id: c for r, c in items}, needs, offered_load(model, requests, gpus)
    )


def synthetic(model: GpuModel, gpus: int, count: int, load: float, seed: int) -> Trace:
    rng = random.Random(seed)
    rate = _rate(model, STEADY_MIX, gpus, load)
    items = _class_requests(rng, count, STEADY_MIX, start_s=0.0, rate=rate, first=0)
    return _trace(f"synthetic steady mix, load {load:.2f}", items, model, gpus)


def phased(
    model: GpuModel, gpus: int, count: int, load: float, seed: int, *, phases: int = 6
) -> Trace:
    rng = random.Random(seed)
    items: list[tuple[TraceRequest, str]] = []
    for phase in range(phases):
        mix = INFERENCE_MIX if phase % 2 == 0 else TRAINING_MIX
        start = items[-1][0].arrival_s if items else 0.0
        rate = _rate(model, mix, gpus, load)
        items.extend(
            _class_requests(rng, count // phases, mix, start_s=start, rate=rate, first=len(items))
        )
    return _trace(f"synthetic phases (inference/training mix), load {load:.2f}", items, model, gpus)


def openb(path: Path, model: GpuModel, gpus: int, count: int, load: float) -> Trace:
    """The last ``count`` single-GPU pods; ``gpu_milli`` -> SMs of ``model``; LS/Guaranteed first.

    The last ones: the trace's creation times are sparse for 100 days (a few long-running
    services), then dense; the dense window is the workload.
    """
    pods = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            duration = int(row["deletion_time"]) - int(row["creation_time"])
            if row["num_gpu"] == "1" and int(row["gpu_milli"]) > 0 and duration > 0:
                pods.append(row)
    pods.sort(key=lambda r: (int(r["creation_time"]), r["name"]))
    pods = pods[-count:]
    full_sms = model.sm_count or max(p.sm_count or 0 for p in model.gi_profiles)
    items = []
    for row in pods:
        sms = math.ceil(int(row["gpu_milli"]) / 1000 * full_sms)
        priority = 1 if row["qos"] in ("LS", "Guaranteed") else 0
        held_s = float(int(row["deletion_time"]) - int(row["creation_time"]))
        item = TraceRequest(
            row["name"], float(row["creation_time"]), held_s, sms=sms, priority=priority
        )
        items.append((item, f"{row['gpu_milli']} milli"))
    raw = offered_load(model, [r for r, _ in items], gpus)
    squeeze = load / raw  # compress arrival times to reach the target load
    start = items[0][0].arrival_s
    scaled = [
        (TraceRequest(r.id, start + (r.arrival_s - start) / squeeze, r.duration_s, sms=r.sms,
                      priority=r.priority), label)
        for r, label in items
    ]  # fmt: skip
    needs = {
        label: Requirement(sms=next(r.sms for r, lab in scaled if lab == label) or 1)
        for label in {lab for _, lab in scaled}
    }
    requests = [r for r, _ in scaled]
    note = f"last {len(requests)} single-GPU pods; arrival gaps x{1 / squeeze:.3g}"
    return Trace(
        f"Alibaba openb pods (SM share), load {load:.2f}", requests, {r.id: lab for r, lab in scaled},
        needs, offered_load(model, requests, gpus), note,
    )  # fmt: skip


# Initial layouts -------------------------------------------------------------------------


def balanced(model: GpuModel) -> Layout:
    """NVIDIA's all-balanced shape on 8-slice GPUs: 2x 1g, 1x 2g, 1x 3g (smallest names)."""
    names = [p for p in model.gi_profiles if "+" not in p.name and not p.name.endswith("-me")]
    by_units: dict[tuple[int, int], GiProfile] = {}
    for profile in sorted(names, key=lambda p: (p.memory_slices, p.compute_slices)):
        by_units.setdefault((profile.compute_slices, profile.memory_slices), profile)
    wanted = [by_units[(1, 1)], by_units[(1, 1)], by_units[(2, 2)], by_units[(3, 4)]]
    placed = place(model, wanted)
    assert placed is not None
    return _filled(model, placed)


def _filled(model: GpuModel, occupants: Sequence[Occupant]) -> Layout:
    """``occupants`` plus as many of the smallest plain profile as still fit."""
    current = list(occupants)
    smallest = min(
        (p for p in model.gi_profiles if "+" not in p.name),
        key=lambda p: (p.memory_slices, p.compute_slices),
    )
    while (more := place(model, [smallest], current)) is not None:
        current.extend(more)
    return sorted(((o.profile.name, o.placement) for o in current), key=lambda x: x[1].start)


def tuned(models: Sequence[GpuModel], trace: Trace) -> list[Layout]:
    """A static layout for the trace's average mix (an oracle: it knows the whole trace).

    Expected concurrent instances per class (Little's law: total hold time / span) are scaled
    up as far as ``pack`` still fits them all on the machine; leftovers get 1g instances.
    """
    busy: dict[str, float] = defaultdict(float)
    for request in trace.requests:
        busy[trace.classes[request.id]] += request.duration_s
    labels = sorted(busy)
    low, high = 0.0, 64.0 * len(models)  # total instances
    best = None
    for _ in range(18):
        scale = (low + high) / 2
        share = sum(busy.values())
        demands = [
            Demand(round(scale * busy[c] / share), requirement=trace.needs[c], label=c)
            for c in labels
        ]
        result = pack(models, demands, method="heuristic")
        if sum(result.unmet) == 0:
            low, best = scale, result
        else:
            high = scale
    layouts: list[list[Occupant]] = [[] for _ in models]
    if best is not None:
        for layout in best.layouts:
            model = models[layout.gpu_index]
            layouts[layout.gpu_index] = [
                Occupant(model.gi_profile(i.profile), i.placement)  # type: ignore[arg-type]
                for i in layout.instances
            ]
    return [_filled(model, occupants) for model, occupants in zip(models, layouts, strict=True)]
