"""Reshapes in flight: two-phase drains, the host's reshape, workers on the new devices.

Why this exists: between "the plan says reshape GPU 3 of host B" and "a task runs on the new
slice" lie steps that take many cycles and may fail; each must happen once:

* **drain, phase 1** (at decision time): ``retire_workers(close_workers=False, remove=False)``:
  the worker stops taking tasks and its results are copied off;
* each cycle, the worker itself is asked for ``executing_count``; at 0, **phase 2**:
  ``retire_workers(close_workers=True, remove=True)`` moves what it produced meanwhile and
  removes it; then the host stops its process group (and so its lease);
* past ``drain_deadline_s`` with a task still running, the drain is **aborted**: the workers go
  back to running (nothing running is ever killed, so no task runs twice) and are pinned (busy)
  for ``pending_deadline_s`` so the same drain is not planned again at once; a worker whose
  results have nowhere to go (no other running worker) cannot be retired: the drain stops;
* all drained: the host reshapes the GPU; a failure leaves the GPU out of plans for
  ``retry_backoff_s``; then workers start on the new devices.

``Reshapes`` holds that state and is the base of ``FleetController``. Imported by
``fleet.controller``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migctl.errors import MigctlError
from migctl.fleet.host import Device, Host, HostInventory
from migctl.fleet.policy import Budget, Policy
from migctl.fleet.resources import RestrictionKey
from migctl.fleet.scheduler_side import (
    SchedulerLink,
    Snapshot,
    executing_count,
    publish,
    reopen,
    retire,
)
from migctl.planner.fleet import GpuTarget

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
    times: dict[str, float] = field(default_factory=dict)  # phase -> seconds it took
    applying: asyncio.Task[None] | None = None  # the host's reshape, then its workers


class Reshapes:
    """Pending reshapes and the steps that advance them (see the module docstring)."""

    hosts: dict[str, Host]

    def __init__(
        self,
        link: SchedulerLink,
        scheduler_address: str,
        policy: Policy,
        clock: Callable[[], float],
    ) -> None:
        self.link = link
        self.scheduler_address = scheduler_address
        self.policy = policy
        self.clock = clock
        self.budget = Budget(policy)
        self.pending: dict[int, Reshape] = {}
        self.inventories: dict[str, HostInventory] = {}  # the newest of each host
        self.decisions: deque[dict[str, Any]] = deque(maxlen=1000)
        self.counts: Counter[str] = Counter()  # decisions by kind, since start
        self.host_counts: Counter[tuple[str, str]] = Counter()  # (kind, host) -> decisions
        self.reshapes_done = 0
        self.pinned: dict[str, float] = {}  # worker name -> until: its drain failed lately
        self.failed: dict[tuple[str, int], float] = {}  # (host, gpu) -> until: reshape failed
        self.backoff: dict[str, float] = {}  # device uuid -> until: its worker failed or died
        self._ids = itertools.count(1)

    async def decide(self, kind: str, **detail: Any) -> None:
        message = {"kind": kind, "at": time.time(), **detail}
        self.decisions.append(message)
        self.counts[kind] += 1
        self.host_counts[(kind, str(detail.get("host", "")))] += 1
        log.info("fleet: %s %s", kind, detail)
        await self.link.call(publish, message)

    # starting a drain ---------------------------------------------------------------------

    async def begin_drain(
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
        self._orphans(reshape, target, inventory, by_name)
        if reshape.drain:
            await self._retire(sorted(reshape.drain), close=False, remove=False)

    def _orphans(
        self, reshape: Reshape, target: GpuTarget, inventory: HostInventory, known: dict[str, str]
    ) -> None:
        """Workers the host runs on doomed devices that never reached the scheduler: stop them
        with the drain (keyed by name; they hold no results)."""
        for instance in target.destroyed:
            device = inventory.device_at(target.index, instance.placement)
            if device is not None and device.worker is not None and device.worker not in known:
                reshape.drain[f"unregistered:{device.worker}"] = device.worker

    async def _retire(self, addresses: list[str], *, close: bool, remove: bool) -> list[str]:
        try:
            done: list[str] = await asyncio.wait_for(
                self.link.call(retire, addresses, close, remove), self.policy.retire_timeout_s
            )
        except TimeoutError:
            return []
        return done

    # advancing ----------------------------------------------------------------------------

    async def advance(self, reshape: Reshape, snapshot: Snapshot) -> None:
        if reshape.host not in self.hosts:
            return  # its host is away: it stays pending until its deadline (no double action)
        if reshape.phase == "draining":
            await self._drain(reshape, snapshot)
        if reshape.phase == "reshaping":
            await self._reshape(reshape)

    async def _drain(self, reshape: Reshape, snapshot: Snapshot) -> None:
        """Phase 2 for every draining worker that executes nothing now: retired together
        (results moved off), then their process groups stopped together."""
        host = self.hosts[reshape.host]
        present = {w.address for w in snapshot.workers}
        idle = []
        for address in sorted(reshape.drain):
            if address not in present or await self.link.call(executing_count, address) == 0:
                idle.append(address)
        registered = [a for a in idle if a in present]
        retired = (
            set(await self._retire(registered, close=True, remove=True)) if registered else set()
        )
        done = [a for a in idle if a not in present or a in retired]
        stuck = next(
            (w for a in idle if a not in done and (w := _nowhere(snapshot, reshape, a))), ""
        )
        names = [reshape.drain.pop(a) for a in done]
        await asyncio.gather(*(host.stop_worker(n, self.policy.stop_grace_s) for n in names))
        for name in names:
            await self.decide("drained", reshape=reshape.ident, host=reshape.host, worker=name)
        if not reshape.drain:
            reshape.times["drain"] = self.clock() - reshape.started
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
        """Start the host's reshape in the background (a slow or silent host must not hold up
        the fleet); it starts workers on the new devices as soon as it is done."""
        if reshape.applying is None:
            reshape.applying = asyncio.create_task(self._apply(reshape))

    async def _apply(self, reshape: Reshape) -> None:
        assert reshape.target is not None and reshape.gpu is not None
        began = self.clock()
        try:
            inventory = await self.hosts[reshape.host].apply({reshape.gpu: reshape.target})
        except Exception as error:  # any failure of the host's reshape ends this reshape
            log.warning("fleet: reshape %s on %s failed: %s", reshape.ident, reshape.host, error)
            reshape.phase = "aborted"
            self.failed[(reshape.host, reshape.gpu)] = self.clock() + self.policy.retry_backoff_s
            await self.decide(
                "reshape-failed",
                reshape=reshape.ident,
                host=reshape.host,
                gpu=reshape.gpu,
                error=getattr(error, "message", str(error)),
            )
            return
        reshape.times["nvml"] = self.clock() - began
        self.inventories[reshape.host] = inventory
        self.reshapes_done += 1
        await self.decide(
            "reshaped", reshape=reshape.ident, host=reshape.host, gpu=reshape.gpu, **reshape.times
        )
        reshape.phase = "starting"
        if reshape.host in self.hosts:
            await self.start_workers(reshape, inventory)

    # workers ------------------------------------------------------------------------------

    async def start_workers(self, reshape: Reshape, inventory: HostInventory) -> None:
        host = self.hosts[reshape.host]
        for gpu, placement in reshape.start_at:
            device = inventory.device_at(gpu, placement)
            if device is None or device.worker is not None or device.busy:
                continue
            name = await self.start_one(host, device, reshape)
            if name is not None:
                reshape.workers.append(name)

    async def start_one(self, host: Host, device: Device, reshape: Reshape | None) -> str | None:
        ident = None if reshape is None else reshape.ident
        try:
            name = await host.start_worker(device, self.scheduler_address)
        except (MigctlError, OSError) as error:
            self.backoff[device.uuid] = self.clock() + self.policy.restart_backoff_s
            await self.decide(
                "worker-failed",
                reshape=ident,
                host=host.name,
                device=device.uuid,
                error=getattr(error, "message", str(error)),
            )
            return None
        self.backoff[device.uuid] = self.clock() + self.policy.restart_backoff_s
        await self.decide(
            "worker-started", reshape=ident, host=host.name, worker=name, profile=device.profile
        )
        return name

    # forgetting ---------------------------------------------------------------------------

    def forget(self, snapshot: Snapshot) -> None:
        now = self.clock()
        self.pinned = {name: until for name, until in self.pinned.items() if until > now}
        self.failed = {key: until for key, until in self.failed.items() if until > now}
        self.backoff = {key: until for key, until in self.backoff.items() if until > now}
        seen = {w.name for w in snapshot.workers}
        for ident, reshape in list(self.pending.items()):
            registered = reshape.phase == "starting" and set(reshape.workers) <= seen
            expired = now > reshape.deadline and reshape.phase not in ("draining", "reshaping")
            if registered and reshape.gpu is not None and "workers" not in reshape.times:
                took = reshape.times.get("drain", 0.0) + reshape.times.get("nvml", 0.0)
                reshape.times["workers"] = now - reshape.started - took
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
