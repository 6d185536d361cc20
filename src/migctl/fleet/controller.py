"""The fleet controller's decision cycle: read demand, plan, drain, reshape, start workers.

Why this exists: Dask knows which tasks wait for which MIG size; the hosts know which
slices exist and which are busy; nobody else turns one into the other. Each ``cycle``:

1. reads the scheduler (``scheduler_side.read_snapshot``) and every host's inventory (a host
   that cannot answer is left out of this cycle: nothing is planned or started on it);
2. advances pending reshapes (``fleet.reshapes``): two-phase drains, the host's reshape
   (``Host.apply``: busy instances are never destroyed), workers on the new devices;
3. takes the demand (unrunnable GPU tasks and the backlog waiting on workers) minus the
   supply that pending reshapes will bring (so one demand is acted on once, until its
   reshape's ``pending_deadline_s`` passes);
4. plans the fleet (``planner.fleet``): GPUs with a reshape in flight, or whose reshape failed
   within ``retry_backoff_s``, are left out; an instance is busy when its worker has tasks or
   someone else holds it;
5. within the budgets (``policy.Budget``), starts workers on idle instances that serve
   demand as they are, and starts the first drain phase of each accepted reshape;
6. keeps one worker on every idle MIG device that has none (``standby``): a fresh fleet, a
   worker that died, a rebuilt scheduler. A device whose worker failed or died waits
   ``restart_backoff_s`` before the next start.

Every decision is published as a Dask event (topic ``migctl-fleet``) and kept in
``decisions`` (the last 1000) for the fleet view and metrics. Imported by ``fleet.plugin``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from migctl.errors import MigctlError
from migctl.fleet.host import Host, HostInventory
from migctl.fleet.policy import Policy
from migctl.fleet.reshapes import Reshape, Reshapes
from migctl.fleet.resources import RestrictionKey, demands_of
from migctl.fleet.scheduler_side import SchedulerLink, Snapshot, read_snapshot
from migctl.planner.fleet import FleetGpu, FleetInstance, GpuTarget, plan_fleet

log = logging.getLogger(__name__)


class Directory(Protocol):
    """Where the hosts come from each cycle (the node agents), and what they reported."""

    async def __call__(self) -> Sequence[Host]: ...

    def take_events(self) -> list[tuple[str, dict[str, Any]]]: ...


class FleetController(Reshapes):
    """See the module docstring. ``hosts``: fixed hosts, or ``directory`` (agents) each cycle;
    ``clock`` is monotonic seconds."""

    def __init__(
        self,
        hosts: Sequence[Host],
        link: SchedulerLink,
        scheduler_address: str,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        directory: Directory | None = None,
        standby: bool = True,
    ) -> None:
        super().__init__(link, scheduler_address, policy or Policy(), clock)
        self.hosts: dict[str, Host] = {h.name: h for h in hosts}
        self.directory = directory
        self.standby = standby
        self.last_plan: dict[str, object] = {}
        self.cycles = 0
        self.last_cycle_s = 0.0

    async def cycle(self) -> None:
        started = time.perf_counter()
        if self.directory is not None:
            self.hosts = {h.name: h for h in await self.directory()}
            await self._events(self.directory.take_events())
        snapshot: Snapshot = await self.link.call(read_snapshot)
        self.inventories = await self._read_hosts()
        for reshape in sorted(self.pending.values(), key=lambda r: r.ident):
            await self.advance(reshape, snapshot)
        self.forget(snapshot)
        await self._plan_and_act(snapshot)
        if self.standby:
            await self._standby()
        self.cycles += 1
        self.last_cycle_s = time.perf_counter() - started

    async def _events(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """What the agents saw: a worker that died waits ``restart_backoff_s`` before the next."""
        for host, event in events:
            detail = dict(event.get("detail") or {})
            if event.get("kind") == "worker-died" and isinstance(detail.get("uuid"), str):
                self.backoff[str(detail["uuid"])] = self.clock() + self.policy.restart_backoff_s
            detail.pop("host", None)
            await self.decide(str(event.get("kind", "agent-event")), host=host, **detail)

    async def _read_hosts(self) -> dict[str, HostInventory]:
        found: dict[str, HostInventory] = {}
        for name, host in sorted(self.hosts.items()):
            try:
                found[name] = await host.inventory()
            except (MigctlError, OSError) as error:
                log.warning("fleet: host %s gave no inventory: %s", name, error)
        return found

    async def _plan_and_act(self, snapshot: Snapshot) -> None:
        keys, demands = demands_of(self._unserved(snapshot))
        if not demands:
            return
        gpus = self._fleet_gpus(snapshot)
        if not gpus:
            return
        plan = await asyncio.to_thread(
            plan_fleet, gpus, demands, time_limit_s=self.policy.plan_time_limit_s
        )
        self.last_plan = plan.to_dict(include_timing=True)
        for target in plan.targets:
            await self._act(target, keys, snapshot, self.inventories[target.host])
            if target.changed and (mine := self._latest(target)) is not None:
                mine.times["plan"] = plan.solve_time_s

    def _latest(self, target: GpuTarget) -> Reshape | None:
        """The reshape just begun for ``target`` (None if it was deferred)."""
        found = [r for r in self.pending.values() if (r.host, r.gpu) == (target.host, target.index)]
        return max(found, key=lambda r: r.ident) if found else None

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

    def _fleet_gpus(self, snapshot: Snapshot) -> list[FleetGpu]:
        views = {w.name: w for w in snapshot.workers}
        moving = {(r.host, r.gpu) for r in self.pending.values()}
        now = self.clock()
        gpus = []
        for name, inventory in self.inventories.items():
            for gpu in inventory.gpus:
                if (name, gpu.index) in moving or self.failed.get((name, gpu.index), 0) > now:
                    continue
                instances = []
                for instance in gpu.instances:
                    device = inventory.device_at(gpu.index, instance.placement)
                    busy = instance.busy
                    if device is not None and device.worker is not None:
                        view = views.get(device.worker)
                        busy = view is None or view.processing > 0 or view.status != "running"
                        busy = busy or self.pinned.get(device.worker, 0.0) > now
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
        starts = [
            (target.index, i.placement)
            for i, _ in target.serves
            if (dev := inventory.device_at(target.index, i.placement)) is not None
            and dev.worker is None
        ]
        supply.update(keys[d] for i, d in target.serves if (target.index, i.placement) in starts)
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
            await self.start_workers(reshape, inventory)
            return
        self.budget.record(target.host, now)
        await self.begin_drain(reshape, target, snapshot, inventory)

    async def _standby(self) -> None:
        """A worker on every idle device without one (not on GPUs being reshaped, nor on one
        whose reshape failed within ``retry_backoff_s``: it is about to be retried)."""
        moving = {(r.host, r.gpu) for r in self.pending.values()}
        now = self.clock()
        for name, inventory in sorted(self.inventories.items()):
            host = self.hosts.get(name)
            if host is None:
                continue
            for device in inventory.devices:
                if device.busy or device.worker is not None or (name, device.gpu) in moving:
                    continue
                if self.failed.get((name, device.gpu), 0.0) > now:
                    continue  # its reshape failed: it is retried soon, no workers meanwhile
                if self.backoff.get(device.uuid, 0.0) > now:
                    continue
                await self.start_one(host, device, reshape=None)
