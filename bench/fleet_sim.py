"""A Dask scheduler and MIG hosts in simulated time, driven by the real fleet controller.

Why this exists: replaying months of the openb trace through real processes would take months;
the controller's decisions are what the benchmark measures. Here the controller's own code
(``FleetController``: demand, planner, two-phase drains, budgets, standby workers) runs
unchanged against:

* ``World``: a virtual clock and what a Dask scheduler does with resource-restricted tasks: a
  task goes to a running worker that offers its resources (the least occupied one), waiting
  there behind the one it runs (one thread per worker) or, when no worker offers them,
  ``unrunnable``; a new worker takes unrunnable tasks it can run; an idle worker steals the
  oldest task waiting on another worker that it can run (Dask's work stealing, idealised); a
  retiring worker (``closing_gracefully``) takes no task and gives back those waiting on it;
* ``SimLink``: the scheduler-side calls the controller makes (``read_snapshot``, ``retire``,
  ``executing_count``, ``reopen``, ``publish``) answered from the ``World``;
* ``SimHost``: a host's GPUs as layouts (placements legal by the planner), whose ``apply``
  takes ``nvml_s`` of virtual time and counts any destroyed instance whose worker runs a task
  (busy destroyed: must stay 0), and whose workers register ``worker_start_s`` after a start.

Time advances from event to event (arrivals, ends, registrations, reshapes, cycles), so a
month of trace replays in seconds; the controller cycles every ``cycle_s`` only while there
is something to do (demand unserved, reshapes in flight, devices without workers). The
planner's own compute time is real time and does not advance the virtual clock.
Imported by ``bench.fleet_replay``, ``bench.fleet_cycle`` and tests.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migctl.fleet.host import Device, HostInventory
from migctl.fleet.resources import restriction_key, worker_resources
from migctl.fleet.scheduler_side import (
    Snapshot,
    WorkerView,
    executing_count,
    publish,
    read_snapshot,
    reopen,
    retire,
)
from migctl.model import GpuModel, Placement
from migctl.planner.fleet_model import FleetGpu, FleetInstance, GpuTarget


@dataclass
class Task:
    ident: int
    restrictions: dict[str, float]
    duration_s: float
    submitted: float
    slices: int  # memory slices it holds while running (for utilisation)
    started: float | None = None
    finished: float | None = None
    runs: int = 0


@dataclass
class Worker:
    address: str
    name: str
    host: str
    uuid: str
    resources: dict[str, float]
    slices: int
    status: str = "running"
    running: Task | None = None
    queue: deque[Task] = field(default_factory=deque)


class World:
    """Virtual time, tasks and workers (see the module docstring)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.workers: dict[str, Worker] = {}
        self.unrunnable: list[Task] = []
        self.done: list[Task] = []
        self.busy_slice_seconds = 0.0
        self._busy_slices = 0
        self.interrupted = 0
        self.version = 0  # changes with every event: a controller with nothing new may skip

    # the clock ------------------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (max(when, self.now), next(self._seq), action))

    def sleep(self, seconds: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self.at(self.now + seconds, wake)
        return future

    def next_time(self) -> float | None:
        return self._events[0][0] if self._events else None

    def advance_to(self, when: float) -> None:
        self.busy_slice_seconds += self._busy_slices * (when - self.now)
        self.now = when

    def step(self) -> None:
        when, _, action = heapq.heappop(self._events)
        self.advance_to(when)
        self.version += 1
        action()

    # tasks ----------------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        valid = [w for w in self.workers.values() if w.status == "running" and _fits(w, task)]
        if not valid:
            self.unrunnable.append(task)
            return
        worker = min(valid, key=lambda w: (len(w.queue) + (w.running is not None), w.address))
        worker.queue.append(task)
        self._start_next(worker)

    def _start_next(self, worker: Worker) -> None:
        if worker.running is None and not worker.queue:
            self._steal(worker)
        if worker.running is not None or not worker.queue:
            return
        task = worker.queue.popleft()
        worker.running = task
        task.started = self.now if task.started is None else task.started
        task.runs += 1
        task.slices = worker.slices  # what it holds: its worker's device (maybe larger)
        self._busy_slices += task.slices
        self.at(self.now + task.duration_s, lambda: self._finish(worker, task))

    def _finish(self, worker: Worker, task: Task) -> None:
        if worker.running is not task:
            return  # the worker went away while it ran (counted as interrupted)
        worker.running = None
        self._busy_slices -= task.slices
        task.finished = self.now
        self.done.append(task)
        self._start_next(worker)

    def _steal(self, thief: Worker) -> None:
        """Work stealing, idealised: an idle worker takes the oldest task it can run that waits
        behind another worker's running one (Dask steals to valid workers only)."""
        if thief.status != "running":
            return
        best: tuple[float, Worker, Task] | None = None
        for victim in self.workers.values():
            for task in victim.queue:
                if _fits(thief, task) and (best is None or task.submitted < best[0]):
                    best = (task.submitted, victim, task)
                    break
        if best is not None:
            best[1].queue.remove(best[2])
            thief.queue.append(best[2])

    def register(self, worker: Worker) -> None:
        self.workers[worker.address] = worker
        waiting, self.unrunnable = self.unrunnable, []
        for task in waiting:
            self.submit(task)
        self._start_next(worker)

    def remove(self, address: str) -> None:
        worker = self.workers.pop(address, None)
        if worker is None:
            return
        if worker.running is not None:  # never by the controller: it drains first
            self.interrupted += 1
            self._busy_slices -= worker.running.slices
            worker.queue.appendleft(worker.running)
            worker.running = None
        for task in worker.queue:
            self.submit(task)

    def close_gracefully(self, address: str) -> None:
        worker = self.workers.get(address)
        if worker is None:
            return
        worker.status = "closing_gracefully"
        waiting, worker.queue = worker.queue, deque()
        for task in waiting:
            self.submit(task)


def _fits(worker: Worker, task: Task) -> bool:
    return all(worker.resources.get(k, 0.0) >= v for k, v in task.restrictions.items())


@dataclass
class SimLink:
    """The controller's scheduler calls, answered by the ``World``."""

    world: World
    only: Callable[[Worker], bool] | None = None  # a per-host controller sees its host only
    demand: Callable[[Task], bool] | None = None

    @property
    def broken(self) -> bool:
        return False

    async def call(self, function: Any, *args: Any) -> Any:
        world = self.world
        if function is read_snapshot:
            return self._snapshot()
        if function is executing_count:
            worker = world.workers.get(args[0])
            return 0 if worker is None or worker.running is None else 1
        if function is retire:
            addresses, close, remove = args
            for address in addresses:
                (world.remove if close or remove else world.close_gracefully)(address)
            return [a for a in addresses if close or a in world.workers]
        if function is reopen:
            if args[0] in world.workers:
                world.workers[args[0]].status = "running"
            return True
        if function is publish:
            return None
        raise NotImplementedError(function)

    def _snapshot(self) -> Snapshot:
        world = self.world
        tasks = [t for t in world.unrunnable if self.demand is None or self.demand(t)]
        views = []
        for worker in world.workers.values():
            if self.only is not None and not self.only(worker):
                continue
            backlog = tuple(restriction_key(t.restrictions) for t in worker.queue)
            processing = len(worker.queue) + (worker.running is not None)
            views.append(
                WorkerView(
                    worker.address, worker.name, worker.status,
                    tuple(sorted(worker.resources.items())), processing, 0, backlog,
                )
            )  # fmt: skip
        return Snapshot(
            tuple(restriction_key(t.restrictions) for t in tasks),
            tuple(sorted(views, key=lambda v: v.address)),
        )


@dataclass
class SimInstance:
    profile: str
    placement: Placement
    gi_id: int
    uuid: str


@dataclass
class SimHost:
    """One host's MIG GPUs in the ``World`` (see the module docstring)."""

    host_name: str
    world: World
    models: list[GpuModel]
    layouts: list[list[tuple[str, Placement]]]
    nvml_s: float = 2.0
    worker_start_s: float = 3.0
    extra_resources: Mapping[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # uuids busy with something not the fleet's
    busy_destroyed: int = 0
    reshapes: int = 0
    gpus: list[list[SimInstance]] = field(default_factory=list)
    workers: dict[str, str] = field(default_factory=dict)  # uuid -> worker name
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.gpus = [[self._new(p, at) for p, at in layout] for layout in self.layouts]

    @classmethod
    def of(cls, world: World, gpus: list[FleetGpu]) -> SimHost:
        """A host holding ``gpus`` as they are (busy instances held by others)."""
        layouts = [[(i.profile, i.placement) for i in g.instances] for g in gpus]
        host = cls(gpus[0].host, world, [g.model for g in gpus], layouts)
        for gpu, instances in zip(gpus, host.gpus, strict=True):
            busy = {i.placement for i in gpu.instances if i.busy}
            host.held |= {i.uuid for i in instances if i.placement in busy}
        return host

    @property
    def name(self) -> str:
        return self.host_name

    def _new(self, profile: str, placement: Placement) -> SimInstance:
        n = next(self._ids)
        return SimInstance(profile, placement, n, f"MIG-{self.host_name}-{n}")

    async def inventory(self) -> HostInventory:
        gpus, devices = [], []
        for index, (model, instances) in enumerate(zip(self.models, self.gpus, strict=True)):
            held = self.held
            fleet = [
                FleetInstance(i.profile, i.placement, i.uuid in held, i.gi_id) for i in instances
            ]
            gpus.append(FleetGpu(self.host_name, index, model, tuple(fleet)))
            devices += [
                Device(
                    i.uuid, index, i.gi_id, i.profile, i.placement, i.uuid in held,
                    self.workers.get(i.uuid),
                )
                for i in instances
            ]  # fmt: skip
        return HostInventory(self.host_name, tuple(gpus), tuple(devices))

    async def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory:
        await self.world.sleep(self.nvml_s)
        running = {w.uuid for w in self.world.workers.values() if w.running is not None}
        for index, target in targets.items():
            kept = {(i.profile, i.placement) for i in target.kept}
            old = self.gpus[index]
            self.busy_destroyed += sum(
                1
                for i in old
                if (i.profile, i.placement) not in kept
                and (i.uuid in running or i.uuid in self.held)
            )
            new = [i for i in old if (i.profile, i.placement) in kept]
            new += [self._new(n.profile, n.placement) for n in target.created]
            self.gpus[index] = sorted(new, key=lambda i: i.placement.start)
            self.reshapes += 1
        return await self.inventory()

    async def start_worker(self, device: Device, scheduler: str) -> str:
        name = f"{self.host_name}:{device.uuid}"
        self.workers[device.uuid] = name
        model = self.models[device.gpu]
        profile = model.gi_profile(device.profile)
        assert profile is not None
        resources = {**worker_resources(profile), **self.extra_resources}
        worker = Worker(
            f"sim://{name}", name, self.host_name, device.uuid, resources, device.placement.size
        )

        def register() -> None:
            if self.workers.get(device.uuid) == name:
                self.world.register(worker)

        self.world.at(self.world.now + self.worker_start_s, register)
        return name

    async def stop_worker(self, name: str, grace_s: float) -> None:
        uuid = next((u for u, n in self.workers.items() if n == name), None)
        if uuid is not None:
            del self.workers[uuid]
        self.world.remove(f"sim://{name}")
