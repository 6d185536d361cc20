"""The fleet controller's decision cycle: read demand, plan, drain, reshape, start workers.

Why this exists: Dask knows which tasks wait for which MIG size; the hosts know which
slices exist and which are busy; nobody else turns one into the other. Each ``cycle``:

1. reads the scheduler (``scheduler_side.read_snapshot``) and every host's inventory;
2. advances pending reshapes: a drain finishes when the worker executes nothing (asked
   of the worker) and is then retired for good (``remove=True``, results moved off
   first) and its process group stopped; past ``drain_deadline_s`` the drain is aborted
   and the workers reopened (nothing running is ever killed); a drained GPU is reshaped
   by its host (``Host.apply``: busy instances are never destroyed), then workers start
   on the new devices;
3. takes the demand (unrunnable GPU tasks and the backlog waiting on workers) minus the
   supply that pending reshapes will bring (so one demand is acted on once, until its
   reshape's ``pending_deadline_s`` passes);
4. plans the fleet (``planner.fleet``): GPUs with a reshape in flight are left out, an
   instance is busy when its worker has tasks or someone else holds it;
5. within the budgets (``policy.Budget``), starts workers on idle instances that serve
   demand as they are, and starts the first drain phase (``retire_workers(
   close_workers=False, remove=False)``) of each accepted reshape.

Every decision is published as a Dask event (topic ``migctl-fleet``) and kept in
``decisions`` (the last 1000) for metrics and the dashboard. Imported by ``fleet.plugin``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from migctl.errors import MigctlError
from migctl.fleet.host import Host, HostInventory
from migctl.fleet.policy import Budget, Policy
from migctl.fleet.resources import RestrictionKey, demands_of
from migctl.fleet.scheduler_side import (
    SchedulerLink,
    Snapshot,
    executing_count,
    publish,
    read_snapshot,
    reopen,
    retire,
)
from migctl.planner.fleet import FleetGpu, FleetInstance, GpuTarget, plan_fleet

log = logging.getLogger(__name__)


@dataclass
class Reshape:
    """One GPU on its way to a target (or idle instances getting workers, ``gpu`` None)."""

    ident: int
    host: str
    gpu: int | None
    target: GpuTarget | None
    supply: Counter[RestrictionKey]  # the demand it will serve
    deadline: float
    started: float
    drain: dict[str, str] = field(default_factory=dict)  # worker address -> name, to drain
    phase: str = "draining"  # draining -> reshaping -> starting -> done | aborted
    workers: list[str] = field(default_factory=list)  # names of the workers it starts
    start_at: list[tuple[int, Any]] = field(default_factory=list)  # (gpu, placement)


class FleetController:
    """See the module docstring. ``hosts`` by name; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        hosts: Sequence[Host],
        link: SchedulerLink,
        scheduler_address: str,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.link = link
        self.scheduler_address = scheduler_address
        self.policy = policy or Policy()
        self.clock = clock
        self.budget = Budget(self.policy)
        self.pending: dict[int, Reshape] = {}
        self.decisions: deque[dict[str, Any]] = deque(maxlen=1000)
        self.reshapes_done = 0
        self.pinned: dict[str, float] = {}  # worker name -> until: its drain failed lately
        self._ids = itertools.count(1)

    async def decide(self, kind: str, **detail: Any) -> None:
        message = {"kind": kind, "at": time.time(), **detail}
        self.decisions.append(message)
        log.info("fleet: %s %s", kind, detail)
        await self.link.call(publish, message)

    async def cycle(self) -> None:
        snapshot: Snapshot = await self.link.call(read_snapshot)
        inventories = {
            n: await asyncio.to_thread(h.inventory) for n, h in sorted(self.hosts.items())
        }
        for reshape in sorted(self.pending.values(), key=lambda r: r.ident):
            await self._advance(reshape, snapshot)
        self._forget(snapshot)
        keys, demands = demands_of(self._unserved(snapshot))
        if not demands:
            return
        gpus = self._fleet_gpus(snapshot, inventories)
        plan = await asyncio.to_thread(
            plan_fleet, gpus, demands, time_limit_s=self.policy.plan_time_limit_s
        )
        for target in plan.targets:
            await self._act(target, keys, snapshot, inventories[target.host])

    # demand and fleet state ------------------------------------------------------------

    def _unserved(self, snapshot: Snapshot) -> list[dict[str, float]]:
        coming: Counter[RestrictionKey] = Counter()
        for reshape in self.pending.values():
            if reshape.phase != "aborted":
                coming.update(reshape.supply)
        unserved = []
        for key in snapshot.demand():
            if coming[key]:
                coming[key] -= 1
            else:
                unserved.append(dict(key))
        return unserved

    def _fleet_gpus(
        self, snapshot: Snapshot, inventories: dict[str, HostInventory]
    ) -> list[FleetGpu]:
        views = {w.name: w for w in snapshot.workers}
        moving = {(r.host, r.gpu) for r in self.pending.values()}
        gpus = []
        for name, inventory in inventories.items():
            for gpu in inventory.gpus:
                if (name, gpu.index) in moving:
                    continue
                instances = []
                for instance in gpu.instances:
                    device = inventory.device_at(gpu.index, instance.placement)
                    busy = instance.busy
                    if device is not None and device.worker is not None:
                        view = views.get(device.worker)
                        busy = view is None or view.processing > 0 or view.status != "running"
                        busy = busy or self.pinned.get(device.worker, 0.0) > self.clock()
                    instances.append(
                        FleetInstance(instance.profile, instance.placement, busy, instance.gi_id)
                    )
                gpus.append(FleetGpu(name, gpu.index, gpu.model, tuple(instances)))
        return gpus

    # acting on a plan --------------------------------------------------------------------

    async def _act(
        self,
        target: GpuTarget,
        keys: list[RestrictionKey],
        snapshot: Snapshot,
        inventory: HostInventory,
    ) -> None:
        now = self.clock()
        supply: Counter[RestrictionKey] = Counter(keys[n.demand] for n in target.created)
        idle = [(i, d) for i, d in target.serves]
        starts = [
            (target.index, i.placement)
            for i, _ in idle
            if (dev := inventory.device_at(target.index, i.placement)) is not None
            and dev.worker is None
        ]
        supply.update(keys[d] for i, d in idle if (target.index, i.placement) in starts)
        if target.changed:
            in_flight = Counter(r.host for r in self.pending.values() if r.gpu is not None)
            refusal = self.budget.refusal(target.host, now, dict(in_flight))
            if refusal is not None:
                await self.decide("deferred", host=target.host, gpu=target.index, reason=refusal)
                return
        elif not starts:
            return
        reshape = Reshape(
            next(self._ids),
            target.host,
            target.index if target.changed else None,
            target if target.changed else None,
            supply,
            now + self.policy.pending_deadline_s,
            now,
            start_at=starts,
        )
        self.pending[reshape.ident] = reshape
        if not target.changed:
            reshape.phase = "starting"
            await self._start_workers(reshape, inventory)
            return
        self.budget.record(target.host, now)
        await self._begin_drain(reshape, target, snapshot, inventory)

    async def _begin_drain(
        self, reshape: Reshape, target: GpuTarget, snapshot: Snapshot, inventory: HostInventory
    ) -> None:
        by_name = {w.name: w.address for w in snapshot.workers}
        for instance in target.destroyed:
            device = inventory.device_at(target.index, instance.placement)
            if device is not None and device.worker is not None and device.worker in by_name:
                reshape.drain[by_name[device.worker]] = device.worker
        reshape.start_at += [(target.index, n.placement) for n in target.created]
        await self.decide(
            "reshape-planned",
            reshape=reshape.ident,
            host=target.host,
            gpu=target.index,
            destroy=[f"{i.profile}@{i.placement}" for i in target.destroyed],
            create=[f"{n.profile}@{n.placement}" for n in target.created],
            drain=sorted(reshape.drain.values()),
        )
        if reshape.drain:
            await self._retire(sorted(reshape.drain), close=False, remove=False)

    async def _retire(self, addresses: list[str], *, close: bool, remove: bool) -> list[str]:
        try:
            done: list[str] = await asyncio.wait_for(
                self.link.call(retire, addresses, close, remove), self.policy.retire_timeout_s
            )
        except TimeoutError:
            return []
        return done

    # advancing pending reshapes ------------------------------------------------------------

    async def _advance(self, reshape: Reshape, snapshot: Snapshot) -> None:
        if reshape.phase == "draining":
            await self._drain(reshape, snapshot)
        if reshape.phase == "reshaping":
            await self._reshape(reshape)

    async def _drain(self, reshape: Reshape, snapshot: Snapshot) -> None:
        host = self.hosts[reshape.host]
        stuck = ""
        for address, name in sorted(reshape.drain.items()):
            running = await self.link.call(executing_count, address)
            if running != 0:
                continue
            if address in {w.address for w in snapshot.workers}:
                retired = await self._retire([address], close=True, remove=True)
                if address not in retired:
                    stuck = stuck or _nowhere(snapshot, reshape, address)
                    continue
            await host.stop_worker(name, self.policy.stop_grace_s)
            del reshape.drain[address]
            await self.decide("drained", reshape=reshape.ident, worker=name)
        if not reshape.drain:
            reshape.phase = "reshaping"
        elif stuck or self.clock() > reshape.started + self.policy.drain_deadline_s:
            await self._abort(reshape, stuck or "running tasks outlived the drain deadline")

    async def _abort(self, reshape: Reshape, reason: str) -> None:
        """Reopen the workers still draining and pin them for a while (no drain loops)."""
        for address, name in sorted(reshape.drain.items()):
            await self.link.call(reopen, address)
            self.pinned[name] = self.clock() + self.policy.pending_deadline_s
        reshape.phase = "aborted"
        await self.decide(
            "drain-aborted",
            reshape=reshape.ident,
            host=reshape.host,
            workers=sorted(reshape.drain.values()),
            reason=reason,
        )

    async def _reshape(self, reshape: Reshape) -> None:
        assert reshape.target is not None and reshape.gpu is not None
        host = self.hosts[reshape.host]
        try:
            inventory = await asyncio.to_thread(host.apply, {reshape.gpu: reshape.target})
        except MigctlError as error:
            reshape.phase = "aborted"
            await self.decide(
                "reshape-failed",
                reshape=reshape.ident,
                host=reshape.host,
                gpu=reshape.gpu,
                error=error.message,
            )
            return
        self.reshapes_done += 1
        await self.decide("reshaped", reshape=reshape.ident, host=reshape.host, gpu=reshape.gpu)
        reshape.phase = "starting"
        await self._start_workers(reshape, inventory)

    async def _start_workers(self, reshape: Reshape, inventory: HostInventory) -> None:
        host = self.hosts[reshape.host]
        for gpu, placement in reshape.start_at:
            device = inventory.device_at(gpu, placement)
            if device is None or device.worker is not None:
                continue
            try:
                name = await host.start_worker(device, self.scheduler_address)
            except MigctlError as error:
                await self.decide(
                    "worker-failed", reshape=reshape.ident, device=device.uuid, error=error.message
                )
                continue
            reshape.workers.append(name)
            await self.decide(
                "worker-started",
                reshape=reshape.ident,
                host=reshape.host,
                worker=name,
                profile=device.profile,
            )

    def _forget(self, snapshot: Snapshot) -> None:
        now = self.clock()
        self.pinned = {name: until for name, until in self.pinned.items() if until > now}
        self._forget_reshapes(snapshot)

    def _forget_reshapes(self, snapshot: Snapshot) -> None:
        """Drop reshapes that ended: aborted, workers registered, or past their deadline."""
        seen = {w.name for w in snapshot.workers}
        now = self.clock()
        for ident, reshape in list(self.pending.items()):
            registered = reshape.phase == "starting" and set(reshape.workers) <= seen
            expired = now > reshape.deadline and reshape.phase != "draining"
            if reshape.phase == "aborted" or registered or expired:
                del self.pending[ident]


def _nowhere(snapshot: Snapshot, reshape: Reshape, address: str) -> str:
    """Why ``address`` cannot be retired for good, if its results have nowhere to go."""
    view = next((w for w in snapshot.workers if w.address == address), None)
    others = [
        w for w in snapshot.workers if w.status == "running" and w.address not in reshape.drain
    ]
    if view is not None and view.holds and not others:
        return f"{view.name} holds {view.holds} result(s) and no other worker can take them"
    return ""
