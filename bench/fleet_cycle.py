"""Control-plane cost: one fleet controller cycle against fleets of up to 20,000 simulated GPUs.

Why this exists: the controller must keep up with a large fleet: each cycle reads the
scheduler's demand and workers, every host's inventory, plans with busy instances pinned, and
acts within its budgets. Fleets come from ``bench.fleet_states`` (H100s, each GPU filled from
the openb trace's share pods to a random level, each instance busy with probability 0.6; hosts
of 8 GPUs), every idle MIG device runs a worker, and half as many pods as GPUs wait
(``waiting_demand``) as unrunnable Dask tasks. The cycle runs against the modelled scheduler and
hosts (``bench.fleet_sim``), so it measures the controller's own work: reading (snapshot and
inventories), planning (``plan_fleet``), and acting (the first drain phase of the reshapes the
budgets allow, 16 in flight; the rest deferred).
Imported by ``bench.fleet_bench``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench.fleet_sim import SimHost, SimLink, Task, World
from bench.fleet_states import fleet, share_pods
from bench.openb_data import Pod, mig_profile
from migctl.fleet.controller import FleetController
from migctl.fleet.policy import Policy
from migctl.fleet.resources import profile_resource
from migctl.model import GpuModel
from migctl.planner.fleet import FleetGpu

SIZES = (100, 1000, 5000, 20000)


@dataclass(frozen=True, slots=True)
class CycleRow:
    gpus: int
    hosts: int
    workers: int
    waiting: int
    states: int
    cycle_s: float
    plan_s: float
    started_drains: int
    deferred: int


def _world(
    gpus: list[FleetGpu], waiting: int, pods: Sequence[Pod], model: GpuModel
) -> tuple[World, list[SimHost]]:
    world = World()
    by_host: dict[str, list[FleetGpu]] = defaultdict(list)
    for gpu in gpus:
        by_host[gpu.host].append(gpu)
    hosts = [SimHost.of(world, group) for _, group in sorted(by_host.items())]
    for host in hosts:
        host.worker_start_s = 0.0
        for device in asyncio.run(host.inventory()).devices:
            if not device.busy:
                asyncio.run(host.start_worker(device, "sim"))
    while world.next_time() is not None:
        world.step()
    shares = share_pods(pods)
    for k in range(waiting):
        profile = mig_profile(model, shares[(k * 7919) % len(shares)].gpu_milli)
        world.submit(Task(k, {profile_resource(profile): 1.0}, 600.0, 0.0, 1))
    return world, hosts


def measure(n: int, pods: Sequence[Pod], model: GpuModel) -> CycleRow:
    gpus = fleet(n, pods, [model], busy=0.6)
    waiting = max(10, n // 2)
    world, hosts = _world(gpus, waiting, pods, model)
    controller = FleetController(
        hosts, SimLink(world), "sim", Policy(plan_time_limit_s=10), clock=lambda: world.now
    )
    started = time.perf_counter()
    asyncio.run(controller.cycle())
    took = time.perf_counter() - started
    plan = controller.last_plan
    return CycleRow(
        n,
        len(hosts),
        len(world.workers),
        waiting,
        int(plan.get("classes", 0)),  # type: ignore[call-overload]
        took,
        float(plan.get("solve_time_s", 0.0)),  # type: ignore[arg-type]
        controller.counts["reshape-planned"],
        controller.counts["deferred"],
    )
