"""A fleet host over any ``migctl.Node``: a LocalNode (this machine, or a simulated one) or a
RemoteNode (the host's daemon).

Why this exists: the fleet must drive a host exactly as every other front end does, through the
Node API, so that the engine's guarantees hold unchanged: ``inventory`` is ``node.inventory()``
(an instance is busy when it has processes or a lease not held by this host's fleet workers, or
several compute instances); a reshape is ``node.apply(InstancesTarget.of(...))`` without force,
so the engine never destroys a busy instance; a worker is ``migctl run --device MIG-<uuid> --job
NAME -- dask worker ...`` pointed at the same machine (``fleet.launch``), so its lease lives in
that host's lease store and ends with it. With ``soft_shares`` the host also keeps a worker per
soft share on each GPU without MIG (``fleet.soft_workers``), which the controller never reshapes.

Node access: ``HeldNode`` keeps one node open (an agent process, a RemoteNode);
``ReopenedNode`` opens the node for each operation under a process-wide lock, because pynvml
keeps one NVML library per process: several simulated hosts can then share one process (the
fast tests, ``MigCluster(in_process=True)``). Node calls are blocking; they run in a thread.
Imported by the agent, ``MigCluster`` and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from migctl.errors import MigctlError, NotFoundError
from migctl.fleet.host import Device, HostInventory, WorkerRecord
from migctl.fleet.launch import InProcessLauncher, Launcher, Started
from migctl.fleet.soft_workers import (
    check_soft_shares,
    is_soft_worker_name,
    soft_devices,
    soft_lease_request,
    wanted_shares,
)
from migctl.fleet.workers import AdoptedGroup, SoftWorkerShare
from migctl.model import GpuModel, InstanceView
from migctl.planner import DesiredCi, DesiredGi, DesiredLayout
from migctl.planner.fleet_model import FleetGpu, FleetInstance, GpuTarget

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.node.protocol import Node
    from migctl.reports import Inventory

log = logging.getLogger(__name__)
T = TypeVar("T")
_NVML = threading.Lock()  # one NVML library per process: reopened nodes take turns


@dataclass
class HeldNode:
    """One node kept open; calls take turns (a backend is not thread-safe)."""

    node: Node
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def use(self) -> Iterator[Node]:
        with self._lock:
            yield self.node

    def close(self) -> None:
        self.node.close()


@dataclass
class ReopenedNode:
    """A node opened for each operation (``opener``), under a process-wide lock."""

    opener: Callable[[], Node]

    @contextlib.contextmanager
    def use(self) -> Iterator[Node]:
        with _NVML:
            node = self.opener()
            try:
                yield node
            finally:
                node.close()

    def close(self) -> None:
        return None


NodeAccess = HeldNode | ReopenedNode


@dataclass
class _Worker:
    uuid: str
    started: Started
    at: float


@dataclass
class NodeHost:
    """One host of the fleet over a node (see the module docstring)."""

    host_name: str
    access: NodeAccess
    launcher: Launcher = field(default_factory=InProcessLauncher)
    soft_shares: tuple[int, ...] = ()  # a worker per share on each GPU without MIG
    _workers: dict[str, _Worker] = field(default_factory=dict)
    _soft_failed: dict[str, float] = field(default_factory=dict)  # name -> when it failed
    _models: dict[int, GpuModel] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.host_name

    async def _call(self, work: Callable[[Node], T]) -> T:
        def run() -> T:
            with self.access.use() as node:
                return work(node)

        return await asyncio.to_thread(run)

    # reading ---------------------------------------------------------------------------------

    async def inventory(self) -> HostInventory:
        return await self._call(self._inventory)

    def _inventory(self, node: Node) -> HostInventory:
        found = node.inventory()
        missing = [g.info.index for g in found.gpus if g.info.index not in self._models]
        if missing:
            self._models.update(node.models(missing))
        inventory = host_inventory(
            self.host_name, found, self._models, self.workers(), self._ours()
        )
        return replace(inventory, soft=soft_devices(found, {n: n for n in self._workers}))

    def __post_init__(self) -> None:
        self.soft_shares = check_soft_shares(self.soft_shares)

    def _ours(self) -> dict[str, int | None]:
        return {w.uuid: w.started.pid for w in self._workers.values()}

    def workers(self) -> tuple[WorkerRecord, ...]:
        return tuple(
            WorkerRecord(name, w.uuid, w.started.pid, w.at)
            for name, w in sorted(self._workers.items())
        )

    def worker_names(self) -> list[str]:
        return sorted(self._workers)

    # reshaping -------------------------------------------------------------------------------

    async def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory:
        """Reshape the GPUs to their targets through the node; raise if it did not."""
        return await self._call(lambda node: self._apply(node, targets))

    def _apply(self, node: Node, targets: Mapping[int, GpuTarget]) -> HostInventory:
        from migctl.schemas.layouts import InstancesTarget

        found = node.inventory(sorted(targets))
        desired = {gpu: desired_layout(found, gpu, target) for gpu, target in targets.items()}
        outcome = node.apply(InstancesTarget.of(desired), gpus=sorted(targets))
        if outcome.failure is not None:
            raise outcome.failure
        log.info("%s: reshaped GPU %s", self.host_name, ", ".join(map(str, sorted(targets))))
        return self._inventory(node)

    # workers ---------------------------------------------------------------------------------

    def worker_name(self, device: Device) -> str:
        return f"{self.host_name}:{device.uuid}"

    async def start_worker(self, device: Device, scheduler: str) -> str:
        name = self.worker_name(device)
        if name in self._workers:
            return name
        profile = await self._call(lambda node: self._profile(node, device))
        lease = None
        if isinstance(self.launcher, InProcessLauncher):
            lease = await self._call(lambda node: _lease_for(node, device.uuid, name))
        try:
            started = await self.launcher.start(
                self._node_for_env(), scheduler, device.uuid, profile, name
            )
        except BaseException:
            if lease is not None:
                await self._release(lease)
            raise
        started.lease = lease
        self._workers[name] = _Worker(device.uuid, started, time.time())
        log.info("%s: started worker %s", self.host_name, name)
        return name

    async def ensure_soft_workers(
        self, scheduler: str, backoff_s: float
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Start the soft-share workers this host lacks (a failed one again after
        ``backoff_s``): the names started, and (name, error) for those that failed."""
        if not self.soft_shares:
            return [], []
        found = await self._call(lambda node: node.inventory())
        wanted = wanted_shares(self.host_name, found, self.soft_shares)
        started, failed = [], []
        for name, share in wanted.items():
            if name in self._workers or time.time() - self._soft_failed.get(name, 0) < backoff_s:
                continue
            try:
                await self._start_soft(name, share, scheduler)
            except (MigctlError, OSError, TimeoutError) as error:
                self._soft_failed[name] = time.time()
                failed.append((name, str(error)[:500]))
            else:
                started.append(name)
        return started, failed

    async def _start_soft(self, name: str, share: SoftWorkerShare, scheduler: str) -> None:
        lease = None
        if isinstance(self.launcher, InProcessLauncher):
            request = soft_lease_request(share, name, os.getpid())
            lease = await self._call(lambda node: node.acquire(request).lease_id)
        try:
            started = await self.launcher.start_soft(self._node_for_env(), scheduler, share, name)
        except BaseException:
            if lease is not None:
                await self._release(lease)
            raise
        started.lease = lease
        self._workers[name] = _Worker(share.parent_uuid, started, time.time())
        log.info("%s: started soft worker %s", self.host_name, name)

    def _node_for_env(self) -> Node:
        """The node a worker's ``migctl run`` must reach (a held node; else opened briefly)."""
        if isinstance(self.access, HeldNode):
            return self.access.node
        with self.access.use() as node:
            return node

    def _profile(self, node: Node, device: Device):  # type: ignore[no-untyped-def]
        model = self._models.get(device.gpu) or node.models([device.gpu]).get(device.gpu)
        profile = model.gi_profile(device.profile) if model is not None else None
        if profile is None:
            raise NotFoundError(
                f"{self.host_name}: GPU {device.gpu} has no MIG profile {device.profile}",
                hint="the host's GPUs changed; the next inventory shows what is there",
                context={"host": self.host_name, "gpu": device.gpu},
            )
        return profile

    async def stop_worker(self, name: str, grace_s: float) -> None:
        worker = self._workers.pop(name, None)
        if worker is None:
            return
        try:
            await worker.started.handle.stop(grace_s)
        except (MigctlError, OSError, TimeoutError) as error:
            log.warning("%s: stopping worker %s: %s", self.host_name, name, error)
        finally:
            if worker.started.lease is not None:
                await self._release(worker.started.lease)
        log.info("%s: stopped worker %s", self.host_name, name)

    async def _release(self, lease: int) -> None:
        def release(node: Node) -> None:
            with contextlib.suppress(MigctlError):
                node.release(lease)

        await self._call(release)

    def reap(self) -> list[WorkerRecord]:
        """Workers whose process ended by itself: forgotten here, returned (to report)."""
        dead = []
        for name, worker in sorted(self._workers.items()):
            if worker.started.handle.exited():
                dead.append(WorkerRecord(name, worker.uuid, worker.started.pid, worker.at))
                del self._workers[name]
                if is_soft_worker_name(self.host_name, name):
                    self._soft_failed[name] = time.time()  # started again after a back-off
        return dead

    async def adopt(self) -> list[str]:
        """Take over the workers an earlier agent of this host started and left running (it
        died): leases whose job is this host's worker name for the device, holder alive."""
        leases = await self._call(lambda node: node.leases())
        adopted = []
        for lease in leases:
            soft = is_soft_worker_name(self.host_name, lease.job)
            name = str(lease.job) if soft else f"{self.host_name}:{lease.uuid}"
            if lease.job != name or lease.pid is None or name in self._workers:
                continue
            try:
                group = os.getpgid(lease.pid)
            except (ProcessLookupError, PermissionError):
                continue  # gone: the store's liveness rules end its lease
            handle = AdoptedGroup(group, lease.pid)
            uuid = (lease.parent_uuid or lease.uuid) if soft else lease.uuid
            self._workers[name] = _Worker(uuid, Started(handle, group), lease.created_at)
            adopted.append(name)
        return adopted

    async def stop_all(self, grace_s: float) -> None:
        for name in self.worker_names():
            await self.stop_worker(name, grace_s)

    def close(self) -> None:
        self.access.close()


def _lease_for(node: Node, uuid: str, name: str) -> int:
    from migctl.schemas.leases import LeaseRequest

    return node.acquire(LeaseRequest(uuid=uuid, job=name, pid=os.getpid())).lease_id


# the inventory, as the controller sees it ----------------------------------------------------


def host_inventory(
    host: str,
    found: Inventory,
    models: Mapping[int, GpuModel],
    workers: Sequence[WorkerRecord] = (),
    ours: Mapping[str, int | None] | None = None,
) -> HostInventory:
    """A node's inventory as fleet GPUs and devices; ``ours``: our workers' uuid -> pid."""
    ours = dict(ours or {})
    by_uuid = {w.uuid: w.name for w in workers}
    holders = found.holders
    gpus: list[FleetGpu] = []
    devices: list[Device] = []
    for view in found.gpus:
        model = models.get(view.info.index)
        if view.info.mig is None or not view.info.mig.current or model is None:
            continue
        instances = []
        for instance in sorted(view.instances, key=lambda i: i.gi.id):
            device = _device_of(instance, holders, by_uuid, ours)
            busy = device.busy if device is not None else True  # a GI without a CI: leave it
            instances.append(
                FleetInstance(instance.gi.profile_name, instance.gi.placement, busy, instance.gi.id)
            )
            if device is not None:
                devices.append(device)
        gpus.append(FleetGpu(host, view.info.index, model, tuple(instances)))
    return HostInventory(host, tuple(gpus), tuple(devices), tuple(workers), found.description)


def _device_of(
    instance: InstanceView,
    holders: Mapping[str, Lease],
    names: Mapping[str, str],
    ours: Mapping[str, int | None],
) -> Device | None:
    """The GI's MIG device (its first CI), busy unless only our own worker holds it."""
    own = sorted(instance.devices, key=lambda d: d.ci_id)
    if not own:
        return None
    first = own[0]
    worker = names.get(first.uuid)
    foreign_lease = any(
        (lease := holders.get(d.uuid)) is not None and not _our_lease(lease, worker) for d in own
    )
    mine = first.uuid in ours
    leader = ours.get(first.uuid)
    foreign_process = any(not (mine and _in_group(p.pid, leader)) for d in own for p in d.processes)
    busy = foreign_lease or foreign_process or len(own) > 1
    gi = instance.gi
    return Device(first.uuid, gi.gpu_index, gi.id, gi.profile_name, gi.placement, busy, worker)


def _our_lease(lease: Lease, worker: str | None) -> bool:
    return worker is not None and lease.job == worker


def _in_group(pid: int, leader: int | None) -> bool:
    """Is ``pid`` our worker's: in its process group (the ``migctl run`` leader's), or this
    process for an in-process worker (``leader`` None)?"""
    if leader is None:
        return pid == os.getpid()
    try:
        return os.getpgid(pid) == leader
    except (ProcessLookupError, PermissionError):
        return False


def desired_layout(found: Inventory, gpu: int, target: GpuTarget) -> DesiredLayout:
    """The GPU's layout after ``target``: kept GIs exactly as they are (their CIs too), the
    created ones at their placements with one CI spanning each."""
    view = found.gpu(gpu)
    if view is None:
        raise NotFoundError(f"GPU {gpu} is not on this host any more", context={"gpu": gpu})
    kept = {(i.profile, i.placement) for i in target.kept}
    gis = [
        DesiredGi(
            i.gi.profile_name,
            i.gi.placement,
            tuple(
                DesiredCi(ci.profile_name, ci.placement) for ci in sorted(i.cis, key=lambda c: c.id)
            ),
        )
        for i in view.instances
        if (i.gi.profile_name, i.gi.placement) in kept
    ]
    gis += [DesiredGi(n.profile, n.placement) for n in target.created]
    return DesiredLayout(tuple(gis))
