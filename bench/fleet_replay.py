"""The openb trace replayed as Dask tasks across simulated hosts, in queue mode, per policy.

Why this exists: issue 14 asks what the fleet controller buys over static MIG layouts and over
today's per-host repartitioning, on real arrivals. Every GPU pod of the openb trace becomes
Dask tasks at its creation time, running until its deletion time (a pod of k whole GPUs: k
tasks of the full-GPU profile; share pods: the smallest MIG profile covering their compute
share, ``bench.openb_data``). Pods wait (queue mode) instead of being refused. The fleet is
sized to the trace's peak concurrent requested demand divided by the load (100%: the peak fits;
120%: the peak is 1.2 x the fleet), in hosts of 8 H100s, every GPU starting in the same tuned
layout (the trace's time-averaged profile mix, packed by the fleet planner). Policies:

* ``static exact-size``: the layout never changes; a pod runs on a device of its profile;
* ``static larger-slot``: never changes; a pod runs on any device with at least its SMs;
* ``per-host repartitioning``: today's daemon, modelled: each pod is bound at arrival to one
  host (the one with a free device of its profile, else the least loaded) and each host
  reshapes only for its own pods, with the daemon's budget (12 reshapes per hour);
* ``fleet controller``: ``FleetController`` over all hosts (global demand, drains, budgets).

Everything runs in simulated time (``bench.fleet_sim``): the controller's real code, a modelled
scheduler; the virtual clock jumps from event to event, so 149 days replay in minutes.
Imported by ``bench.fleet_bench``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.fleet_sim import SimHost, SimLink, Task, Worker, World
from bench.openb_data import Pod, mig_profile
from migctl.fleet.controller import FleetController
from migctl.fleet.policy import Policy
from migctl.fleet.resources import GPU_SM, MIG_DEVICE, profile_resource
from migctl.model import GpuModel, Placement
from migctl.planner.fleet import Demand, FleetGpu, plan_fleet

GPUS_PER_HOST = 8
HOUR = 3600.0
POLICIES = (
    "static exact-size",
    "static larger-slot",
    "per-host repartitioning",
    "fleet controller",
)


@dataclass
class Job:
    """One Dask task of a pod."""

    pod: str
    profile: str
    arrival: float
    duration_s: float
    milli: int


@dataclass
class Outcome:
    policy: str
    load: float
    gpus: int
    tasks: int
    started: int = 0
    within_hour: int = 0
    mean_wait_s: float = 0.0
    p99_wait_s: float = 0.0
    utilisation: float = 0.0
    busy_destroyed: int = 0
    reruns: int = 0
    reshapes: int = 0
    wall_s: float = 0.0
    waits: list[float] = field(default_factory=list)


def jobs_of(pods: Sequence[Pod], model: GpuModel) -> list[Job]:
    full = max(model.gi_profiles, key=lambda p: p.memory_slices or 0).name
    jobs = []
    for pod in pods:
        if not pod.requested_milli:
            continue
        duration = float(max(pod.deletion_s - pod.creation_s, 1))
        if pod.gpu_milli >= 1000:
            jobs += [
                Job(pod.name, full, float(pod.creation_s), duration, 1000)
                for _ in range(pod.num_gpu)
            ]
        else:
            profile = mig_profile(model, pod.gpu_milli)
            jobs.append(Job(pod.name, profile, float(pod.creation_s), duration, pod.gpu_milli))
    return sorted(jobs, key=lambda j: (j.arrival, j.pod))


def peak_gpus(pods: Sequence[Pod]) -> float:
    """The most requested GPU demand alive at once, in GPUs."""
    events = sorted(
        [(p.creation_s, p.requested_milli) for p in pods if p.requested_milli]
        + [(p.deletion_s, -p.requested_milli) for p in pods if p.requested_milli],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak / 1000


def tuned_layouts(
    jobs: Sequence[Job], model: GpuModel, gpus: int
) -> list[list[tuple[str, Placement]]]:
    """Every GPU's layout for the trace's time-averaged profile mix, scaled to the fleet and
    packed by the fleet planner (an oracle: it has seen the whole trace)."""
    seconds: dict[str, float] = {}
    for job in jobs:
        seconds[job.profile] = seconds.get(job.profile, 0.0) + job.duration_s
    total = sum(seconds.values())
    size = {p: (model.gi_profile(p).memory_slices or 1) for p in seconds}  # type: ignore[union-attr]
    slices = (model.memory_slices or 8) * gpus
    share = {p: seconds[p] / total for p in seconds}
    scale = slices / sum(share[p] * size[p] for p in seconds)
    demands = [Demand(max(1, math.floor(share[p] * scale)), (p,)) for p in sorted(seconds)]
    plan = plan_fleet([FleetGpu("tune", i, model) for i in range(gpus)], demands, time_limit_s=30)
    layouts: list[list[tuple[str, Placement]]] = [[] for _ in range(gpus)]
    for target in plan.targets:
        layouts[target.index] = sorted(
            ((n.profile, n.placement) for n in target.created), key=lambda c: c[1].start
        )
    return layouts


def restrictions(job: Job, model: GpuModel, flexible: bool) -> dict[str, float]:
    if not flexible:
        return {profile_resource(job.profile): 1.0}
    profile = model.gi_profile(job.profile)
    assert profile is not None and profile.sm_count is not None
    return {GPU_SM: float(profile.sm_count), MIG_DEVICE: 1.0}


def replay(
    jobs: Sequence[Job],
    model: GpuModel,
    policy: str,
    load: float,
    peak: float,
    *,
    cycle_s: float = 10.0,
) -> Outcome:
    started = time.perf_counter()
    gpus = math.ceil(peak / load)
    layouts = tuned_layouts(jobs, model, gpus)
    world = World()
    hosts = _hosts(world, model, layouts, policy)
    controllers = _controllers(world, hosts, policy, cycle_s)
    if not controllers:
        for host in hosts:
            asyncio.run(_standby(host))
    tasks = _submit(world, jobs, model, hosts, policy)
    asyncio.run(_drive(world, controllers, cycle_s))
    outcome = _measure(world, tasks, policy, load, hosts)
    outcome.wall_s = time.perf_counter() - started
    return outcome


def _hosts(
    world: World, model: GpuModel, layouts: list[list[tuple[str, Placement]]], policy: str
) -> list[SimHost]:
    hosts = []
    for first in range(0, len(layouts), GPUS_PER_HOST):
        mine = layouts[first : first + GPUS_PER_HOST]
        name = f"h{first // GPUS_PER_HOST:02d}"
        extra = {f"host-{name}": 1.0} if policy == "per-host repartitioning" else {}
        hosts.append(SimHost(name, world, [model] * len(mine), mine, extra_resources=extra))
    return hosts


async def _standby(host: SimHost) -> None:
    for device in (await host.inventory()).devices:
        await host.start_worker(device, "sim")


def _controllers(
    world: World, hosts: list[SimHost], policy: str, cycle_s: float
) -> list[FleetController]:
    if policy.startswith("static"):
        for host in hosts:
            host.worker_start_s = 0.0
        return []
    common = {"cycle_s": cycle_s, "drain_deadline_s": 600.0, "pending_deadline_s": 900.0}
    if policy == "fleet controller":
        link = SimLink(world)
        return [FleetController(hosts, link, "sim", Policy(**common), clock=lambda: world.now)]  # type: ignore[arg-type]
    daemon = Policy(**common, per_host_per_hour=12)  # type: ignore[arg-type]
    controllers = []
    for host in hosts:
        key = f"host-{host.name}"
        link = SimLink(world, only=_on_host(host.name), demand=_bound_to(key))
        controllers.append(FleetController([host], link, "sim", daemon, clock=lambda: world.now))
    return controllers


def _submit(
    world: World, jobs: Sequence[Job], model: GpuModel, hosts: list[SimHost], policy: str
) -> list[Task]:
    tasks = []
    flexible = policy == "static larger-slot"
    for index, job in enumerate(jobs):
        profile = model.gi_profile(job.profile)
        slices = profile.memory_slices if profile and profile.memory_slices else 1
        task = Task(index, restrictions(job, model, flexible), job.duration_s, job.arrival, slices)
        tasks.append(task)
        world.at(job.arrival, _arrival(world, hosts, task, policy == "per-host repartitioning"))
    return tasks


def _arrival(world: World, hosts: list[SimHost], task: Task, bind: bool) -> Callable[[], None]:
    def arrive() -> None:
        if bind:
            _bind_and_submit(world, hosts, task)
        else:
            world.submit(task)

    return arrive


def _on_host(name: str) -> Callable[[Worker], bool]:
    return lambda worker: worker.host == name


def _bound_to(key: str) -> Callable[[Task], bool]:
    return lambda task: key in task.restrictions


def _bind_and_submit(world: World, hosts: list[SimHost], task: Task) -> None:
    """Per-host mode: bind the pod to a host with a free device for it, else the least loaded."""
    free: Counter[str] = Counter()
    load: Counter[str] = Counter()
    for worker in world.workers.values():
        load[worker.host] += len(worker.queue) + (worker.running is not None)
        fits = all(worker.resources.get(k, 0) >= v for k, v in task.restrictions.items())
        if worker.running is None and not worker.queue and fits:
            free[worker.host] += 1
    pending = Counter(
        next(k for k in t.restrictions if k.startswith("host-"))[5:] for t in world.unrunnable
    )
    chosen = max(
        hosts, key=lambda h: (free[h.name], -(load[h.name] + pending[h.name]), h.name)
    ).name
    task.restrictions = {**task.restrictions, f"host-{chosen}": 1.0}
    world.submit(task)


async def _drive(world: World, controllers: list[FleetController], cycle_s: float) -> None:
    next_cycle: float | None = None
    seen = -1
    while True:
        upcoming = world.next_time()
        busy = controllers and (world.version != seen or any(c.pending for c in controllers))
        if busy and next_cycle is None:
            next_cycle = world.now + cycle_s
        if next_cycle is not None and (upcoming is None or next_cycle <= upcoming):
            world.advance_to(next_cycle)
            seen = world.version
            for controller in controllers:
                await controller.cycle()
            for _ in range(3):
                await asyncio.sleep(0)
            next_cycle = None
            continue
        if upcoming is None:
            break
        world.step()
        for _ in range(2):
            await asyncio.sleep(0)


def _measure(
    world: World, tasks: Sequence[Task], policy: str, load: float, hosts: Sequence[SimHost]
) -> Outcome:
    gpus = sum(len(h.models) for h in hosts)
    ran = [t for t in tasks if t.started is not None]
    waits = sorted(t.started - t.submitted for t in ran if t.started is not None)
    horizon = max((t.finished or world.now) for t in tasks) - min(t.submitted for t in tasks)
    slices = sum(m.memory_slices or 0 for h in hosts for m in h.models)
    return Outcome(
        policy,
        load,
        gpus,
        len(tasks),
        started=len(ran),
        within_hour=sum(1 for w in waits if w <= HOUR),
        mean_wait_s=sum(waits) / len(waits) if waits else 0.0,
        p99_wait_s=waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0.0,
        utilisation=world.busy_slice_seconds / (slices * horizon) if horizon > 0 else 0.0,
        busy_destroyed=sum(h.busy_destroyed for h in hosts),
        reruns=sum(max(0, t.runs - 1) for t in tasks) + world.interrupted,
        reshapes=sum(h.reshapes for h in hosts),
        waits=waits,
    )
