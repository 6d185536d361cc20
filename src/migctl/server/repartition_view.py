"""The machine as ``migctl.repartition.decide`` sees it, read by the daemon under its GPU lock.

Why this module exists: the repartitioner decides on plain values (``MachineView``); the daemon
must build them from its node's inventory (instances, processes, active leases: one read) the
way the engine does (busy = processes or an active lease, as ``engine.current.read_current``,
which :func:`read_gpu` matches), plus what only the daemon
knows: since when each device has been idle (an ``IdleTracker`` fed at every read), which GPUs
a reshape is changing right now (those are ``reconfiguring``, and the instances it will
destroy count as busy so that nobody is granted them meanwhile), and when past reshapes
started (the hourly budget). Also the check a reshape job makes before it changes anything:
the GPU still has the instances the decision saw.

Only ``migctl.server.repartitioner`` and ``migctl.server.repartition_job`` import this module.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from migctl.model import GpuView as MachineGpu
from migctl.node.local import LocalNode
from migctl.planner import CurrentGpu
from migctl.repartition import GpuView, IdleTracker, MachineView
from migctl.server.gpu import GpuAccess

GiKey = tuple[int, str, int, int]  # (GI id, GI profile, start, size)


@dataclass(frozen=True, slots=True)
class InFlight:
    """A reshape submitted and not yet finished: its GPU and what it will destroy."""

    gpu_index: int
    destroyed_gi_ids: frozenset[int]
    withheld_uuids: frozenset[str]  # the MIG devices of those GIs: never leased meanwhile


class SharedIdleTracker:
    """An ``IdleTracker`` used from the I/O threads (reads) and the loop (after reshapes)."""

    def __init__(self) -> None:
        self._tracker = IdleTracker()
        self._lock = threading.Lock()

    def observe(self, gpu: CurrentGpu, now: float) -> dict[tuple[int, int], float]:
        with self._lock:
            return self._tracker.observe(gpu, now)

    def forget_destroyed(self, decided: CurrentGpu, destroyed: Collection[int], now: float) -> None:
        """After a reshape: forget the destroyed GIs (their ids may be reused by new ones) and
        keep the idle times of the instances that stayed."""
        self.observe(protect(decided, destroyed), now)


def protect(current: CurrentGpu, gi_ids: Collection[int]) -> CurrentGpu:
    """``current`` with the GIs in ``gi_ids`` marked busy."""
    if not gi_ids:
        return current
    gis = tuple(replace(gi, busy=True) if gi.gi_id in gi_ids else gi for gi in current.gis)
    return replace(current, gis=gis)


def gi_keys(current: CurrentGpu) -> frozenset[GiKey]:
    return frozenset(
        (gi.gi_id, gi.profile, gi.placement.start, gi.placement.size) for gi in current.gis
    )


def live_gi_keys(node: LocalNode, gpu_index: int) -> frozenset[GiKey]:
    """The GIs on ``gpu_index`` now, keyed like :func:`gi_keys` (call under the GPU lock)."""
    (view,) = node.inventory([gpu_index]).gpus
    mode = view.info.mig
    if not (mode and mode.current):
        return frozenset()
    return frozenset(
        (item.gi.id, item.gi.profile_name, item.gi.placement.start, item.gi.placement.size)
        for item in view.instances
    )


def read_gpu(
    view: MachineGpu, holders: Collection[str]
) -> tuple[CurrentGpu, dict[tuple[int, int], str]]:
    """One GPU as ``engine.current.read_current`` reads it (busy = processes or an active
    lease: its MIG device UUID in ``holders``), and its MIG device uuids."""
    index, mode = view.info.index, view.info.mig
    if not (mode and mode.current):
        return CurrentGpu(index, (), mig_enabled=False), {}
    devices = view.devices
    busy = [(d.gi_id, d.ci_id) for d in devices if d.processes or d.uuid in holders]
    gis = [item.gi for item in view.instances]
    cis = [ci for item in view.instances for ci in item.cis]
    current = CurrentGpu.from_instances(index, gis, cis, busy_cis=busy, mig_enabled=True)
    return current, {(d.gi_id, d.ci_id): d.uuid for d in devices}


def read_machine(
    gpu: GpuAccess,
    tracker: SharedIdleTracker,
    *,
    in_flight: Mapping[int, InFlight],
    reshape_times_s: Sequence[float],
    now: float,
) -> MachineView:
    """Every MIG-capable GPU with busy flags, idle times and uuids (blocking: an I/O thread)."""
    models = gpu.models()
    inventory = gpu.call(gpu.node.inventory, sorted(models)) if models else None
    views = []
    if inventory is not None:
        holders = {lease.uuid for lease in inventory.leases if lease.active}
        for found in sorted(inventory.gpus, key=lambda v: v.info.index):
            index = found.info.index
            current, uuids = read_gpu(found, holders)
            idle_since = tracker.observe(current, now)
            flight = in_flight.get(index)
            if flight is not None:
                current = protect(current, flight.destroyed_gi_ids)
            views.append(
                GpuView(models[index], current, idle_since, uuids, reconfiguring=bool(flight))
            )
    return MachineView(tuple(views), tuple(reshape_times_s))


def device_uuids(view: MachineView, gpu_index: int, gi_ids: Collection[int]) -> frozenset[str]:
    """The MIG device uuids of the GIs ``gi_ids`` on one GPU of ``view``."""
    for gpu in view.gpus:
        if gpu.gpu_index == gpu_index:
            return frozenset(u for (gi, _ci), u in gpu.uuids.items() if gi in gi_ids)
    return frozenset()


def gpu_current(view: MachineView, gpu_index: int) -> CurrentGpu:
    return next(g.current for g in view.gpus if g.gpu_index == gpu_index)
