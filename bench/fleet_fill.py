"""FGD's fill-until-full on MIG with the fleet planner admitting pods in batches.

Why this exists: the online policies place each pod as it comes and reach 90.4% useful
allocation of the openb trace on MIG H100s, 3.7 points below the offline optimum (94.1%,
``bench.openb_optimum``). The fleet controller plans many waiting pods at once; this measures
where that lands. Pods arrive as FGD's runs order them (``bench.openb_fill.arrival_order``:
shuffled with the seed, topped up to 130%); GPU pods queue; every ``batch`` arrivals (and at
the reading, when arrived GPU demand reaches the capacity) ``plan_fleet`` plans the queue on the
fleet's current state, placed instances busy (pinned), and the pods it serves are placed
(oldest first; a k-GPU pod only with all its k full-GPU instances). Useful = requested milli of
placed pods / capacity, read when arrived demand reaches 100%; slices = memory slices held.
Like the offline optimum, node CPU and memory and a whole-GPU pod's node locality are left out.
Imported by ``bench.fleet_bench``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

from bench.openb_data import Pod, mig_profile
from bench.openb_fill import arrival_order
from migctl.model import GpuModel
from migctl.planner.fleet import Demand, FleetGpu, FleetInstance, plan_fleet


@dataclass(frozen=True, slots=True)
class BatchFill:
    seed: int
    batch: int  # 0: one batch at the reading
    useful: float
    slices: float
    placed_pods: int
    plans: int
    seconds: float


@dataclass
class _Waiting:
    pod: Pod
    profile: str
    count: int  # instances it needs (k for a k-GPU pod)


def batch_fill(pods: Sequence[Pod], model: GpuModel, gpus: int, seed: int, batch: int) -> BatchFill:
    import time

    started = time.perf_counter()
    full = max(model.gi_profiles, key=lambda p: p.memory_slices or 0).name
    fleet = [FleetGpu("fill", i, model) for i in range(gpus)]
    capacity = 1000 * gpus
    queue: deque[_Waiting] = deque()
    arrived = placed = plans = pods_placed = since = 0
    for pod in arrival_order(pods, seed):
        if not pod.requested_milli:
            continue
        arrived += pod.requested_milli
        whole = pod.gpu_milli >= 1000
        queue.append(
            _Waiting(
                pod,
                full if whole else mig_profile(model, pod.gpu_milli),
                pod.num_gpu if whole else 1,
            )
        )
        since += 1
        reading = arrived >= capacity
        if reading or (batch and since >= batch):
            gained, count, fleet = _admit(fleet, queue)
            placed += gained
            pods_placed += count
            plans += 1
            since = 0
        if reading:
            break
    held = sum(i.placement.size for g in fleet for i in g.instances if i.busy)
    return BatchFill(
        seed, batch, placed / capacity, held / (gpus * (model.memory_slices or 8)), pods_placed, plans,
        time.perf_counter() - started,
    )  # fmt: skip


def _admit(fleet: list[FleetGpu], queue: deque[_Waiting]) -> tuple[int, int, list[FleetGpu]]:
    """One batch: plan the queue, place the pods served (oldest first); the milli placed, pods
    placed and the fleet after (unused new instances stay, idle)."""
    wanted: Counter[str] = Counter()
    for item in queue:
        wanted[item.profile] += item.count
    profiles = sorted(wanted)
    plan = plan_fleet(fleet, [Demand(wanted[p], (p,)) for p in profiles], time_limit_s=10)
    slots: dict[str, list[tuple[int, FleetInstance]]] = {p: [] for p in profiles}
    by_index = {g.index: g for g in fleet}
    for target in plan.targets:
        for new in target.created:
            slots[profiles[new.demand]].append(
                (target.index, FleetInstance(new.profile, new.placement))
            )
        for kept, demand in target.serves:
            slots[profiles[demand]].append((target.index, kept))
        kept_all = list(target.kept)
        created = [FleetInstance(n.profile, n.placement) for n in target.created]
        by_index[target.index] = FleetGpu(
            "fill", target.index, by_index[target.index].model, tuple(kept_all + created)
        )
    used: set[tuple[int, int]] = set()
    gained = count = 0
    for item in list(queue):
        free = [s for s in slots[item.profile] if (s[0], s[1].placement.start) not in used]
        if len(free) < item.count:
            continue
        for gpu, instance in free[: item.count]:
            used.add((gpu, instance.placement.start))
        gained += item.pod.requested_milli
        count += 1
        queue.remove(item)
    after = []
    for state in by_index.values():
        instances = tuple(
            FleetInstance(
                i.profile, i.placement, i.busy or (state.index, i.placement.start) in used
            )
            for i in state.instances
        )
        after.append(FleetGpu("fill", state.index, state.model, instances))
    return gained, count, sorted(after, key=lambda g: g.index)
