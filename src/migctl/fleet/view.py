"""The fleet view: every host, GPU, slice, worker and task, and the fleet's Prometheus metrics.

Why this exists: operators ask "what runs where, what waits, what is the controller doing?"
for the whole fleet at once. After each cycle the controller joins its hosts' inventories with
the scheduler's workers and tasks (``read_tasks``, run in the scheduler) into one
``FleetStatusOut`` document, renders metrics with host labels from it, and leaves both in the
registry, where ``migctl fleet status`` / ``metrics`` and the dashboard's fleet page read them.
``RerunCounter`` counts, from the scheduler's transitions, the tasks Dask ran again.
Imported by ``fleet.plugin`` and the CLI.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from migctl.fleet.controller import FleetController
from migctl.fleet.host import SoftDevice
from migctl.fleet.registry import remote_publish_view
from migctl.fleet.scheduler_side import SchedulerLink
from migctl.fleet.wire import soft_out, to_msg
from migctl.schemas.base import PlacementOut
from migctl.schemas.fleet import (
    ControllerOut,
    FleetStatusOut,
    GpuViewOut,
    HostViewOut,
    ReshapeOut,
    SliceOut,
    SoftSliceOut,
    TaskOut,
    WorkerOut,
)

MAX_TASKS_PER_WORKER = 64
MAX_WAITING = 200
MAX_DECISIONS = 50


class RerunCounter:
    """Tasks that reached memory twice (run again) and running attempts lost with a worker."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.rerun = 0
        self.interrupted = 0

    def transition(self, key: Any, start: str, finish: str, stimulus_id: str) -> None:
        name = str(key)
        if start == "processing" and finish == "memory":
            if name in self.done:
                self.rerun += 1
            self.done.add(name)
        elif start == "processing" and finish in ("released", "waiting", "no-worker"):
            if stimulus_id.startswith(("remove-worker", "handle-worker-cleanup", "worker-died")):
                self.interrupted += 1
        elif finish == "forgotten":
            self.done.discard(name)


def _task(ts: Any, state: str) -> dict[str, Any]:
    restrictions = ts.resource_restrictions or {}
    return {"key": str(ts.key)[:400], "state": state, "resources": dict(restrictions)}


def read_tasks(dask_scheduler: Any) -> dict[str, Any]:
    """Per worker name: address, status and the tasks it holds; and the unrunnable tasks."""
    workers = {}
    for ws in dask_scheduler.workers.values():
        tasks = [_task(ts, "processing") for ts in list(ws.processing)[:MAX_TASKS_PER_WORKER]]
        workers[str(ws.name)] = {
            "address": ws.address,
            "status": ws.status.name,
            "processing": len(ws.processing),
            "tasks": tasks,
        }
    waiting = [_task(ts, "no-worker") for ts in list(dask_scheduler.unrunnable)[:MAX_WAITING]]
    return {"workers": workers, "waiting": waiting, "address": dask_scheduler.address}


def build_view(
    controller: FleetController,
    tasks: dict[str, Any],
    mode: str,
    holder: str,
    reruns: RerunCounter | None,
) -> FleetStatusOut:
    return FleetStatusOut(
        scheduler=str(tasks.get("address", "")),
        controller=ControllerOut(
            running=True,
            mode=mode,
            holder=holder,
            cycles=controller.cycles,
            last_cycle_s=controller.last_cycle_s,
            reshapes_done=controller.reshapes_done,
            counts=dict(controller.counts),
            tasks_rerun=reruns.rerun if reruns else 0,
            tasks_interrupted=reruns.interrupted if reruns else 0,
        ),
        hosts=_hosts(controller, tasks["workers"]),
        waiting=[TaskOut(**t) for t in tasks["waiting"]],
        reshapes=_reshapes(controller),
        decisions=list(controller.decisions)[-MAX_DECISIONS:],
    )


def _hosts(controller: FleetController, workers: dict[str, Any]) -> list[HostViewOut]:
    moving = {(r.host, r.gpu) for r in controller.pending.values()}
    hosts = []
    for name in sorted(set(controller.hosts) | set(controller.inventories)):
        inventory = controller.inventories.get(name)
        host = controller.hosts.get(name)
        pids = {w.name: w.pid for w in inventory.workers} if inventory else {}
        gpus = []
        for gpu in inventory.gpus if inventory else ():
            slices = []
            for instance in gpu.instances:
                device = inventory.device_at(gpu.index, instance.placement) if inventory else None
                worker = None
                if device is not None and device.worker is not None:
                    worker = _worker(device.worker, workers.get(device.worker), pids)
                slices.append(
                    SliceOut(
                        profile=instance.profile,
                        placement=PlacementOut.of(instance.placement),
                        gi_id=instance.gi_id,
                        uuid=device.uuid if device else None,
                        busy=instance.busy,
                        worker=worker,
                    )
                )
            reshaping = (name, gpu.index) in moving
            gpus.append(
                GpuViewOut(index=gpu.index, model=gpu.model.key, slices=slices, reshaping=reshaping)
            )
        hosts.append(
            HostViewOut(
                name=name,
                description=inventory.description if inventory else "",
                seen_s_ago=getattr(host, "age_s", None),
                error=getattr(host, "error", None),
                gpus=gpus,
                soft=_soft(inventory.soft if inventory else (), workers, pids),
            )
        )
    return hosts


def _soft(
    devices: Sequence[SoftDevice], workers: dict[str, Any], pids: dict[str, int | None]
) -> list[SoftSliceOut]:
    """The host's soft devices (isolation soft), each with its worker as the scheduler sees it."""
    return [
        SoftSliceOut(
            **to_msg(soft_out(device)),
            worker_view=_worker(device.worker, workers.get(device.worker), pids)
            if device.worker is not None
            else None,
        )
        for device in devices
    ]


def _worker(name: str, seen: dict[str, Any] | None, pids: dict[str, int | None]) -> WorkerOut:
    if seen is None:
        return WorkerOut(name=name, pid=pids.get(name), status="starting")
    return WorkerOut(
        name=name,
        pid=pids.get(name),
        address=seen["address"],
        status=seen["status"],
        processing=seen["processing"],
        tasks=[TaskOut(**t) for t in seen["tasks"]],
    )


def _reshapes(controller: FleetController) -> list[ReshapeOut]:
    now = controller.clock()
    return [
        ReshapeOut(
            id=r.ident,
            host=r.host,
            gpu=r.gpu,
            phase=r.phase,
            draining=sorted(r.drain.values()),
            workers=list(r.workers),
            age_s=now - r.started,
        )
        for r in sorted(controller.pending.values(), key=lambda r: r.ident)
    ]


async def publish_view(
    controller: FleetController,
    link: SchedulerLink,
    mode: str,
    holder: str,
    reruns: RerunCounter | None,
) -> FleetStatusOut:
    tasks = await link.call(read_tasks)
    view = build_view(controller, tasks, mode, holder, reruns)
    text = render_metrics(view, controller)
    await link.call(remote_publish_view, view.model_dump(mode="json"), text)
    return view


# metrics -------------------------------------------------------------------------------------


class _FleetCollector(Collector):
    def __init__(self, view: FleetStatusOut, host_counts: Counter[tuple[str, str]]) -> None:
        self.view = view
        self.host_counts = host_counts

    def collect(self) -> Iterator[Metric]:
        view = self.view
        up = GaugeMetricFamily(
            "migctl_fleet_host_up", "1 when the host reported an inventory", labels=["host"]
        )
        gpus = GaugeMetricFamily("migctl_fleet_gpus", "MIG-enabled GPUs per host", labels=["host"])
        slices = GaugeMetricFamily(
            "migctl_fleet_slices",
            "MIG devices by host, profile and state (busy: held by others; worker: a fleet "
            "worker runs on it; idle)",
            labels=["host", "profile", "state"],
        )
        running = GaugeMetricFamily(
            "migctl_fleet_tasks_running", "tasks on fleet workers", labels=["host"]
        )
        reshaping = GaugeMetricFamily(
            "migctl_fleet_gpus_reshaping", "GPUs with a reshape in flight", labels=["host"]
        )
        for host in view.hosts:
            up.add_metric([host.name], 0.0 if host.error else 1.0)
            gpus.add_metric([host.name], float(len(host.gpus)))
            counts: Counter[tuple[str, str]] = Counter()
            for gpu in host.gpus:
                for item in gpu.slices:
                    state = "busy" if item.busy else "worker" if item.worker else "idle"
                    counts[(item.profile, state)] += 1
            for (profile, state), count in sorted(counts.items()):
                slices.add_metric([host.name, profile, state], float(count))
            tasks = sum(s.worker.processing for g in host.gpus for s in g.slices if s.worker)
            running.add_metric([host.name], float(tasks))
            reshaping.add_metric([host.name], float(sum(g.reshaping for g in host.gpus)))
        yield from (up, gpus, slices, running, reshaping)
        yield self._soft()
        yield from self._controller()

    def _soft(self) -> Metric:
        soft = GaugeMetricFamily(
            "migctl_fleet_soft_devices",
            "soft devices (MPS shares of GPUs without MIG; no fault or memory-bandwidth "
            "isolation) by host, share and state (worker: a fleet worker holds it; held: "
            "leased by others; free)",
            labels=["host", "share", "state", "isolation"],
        )
        for host in self.view.hosts:
            counts: Counter[tuple[str, str]] = Counter()
            for device in host.soft:
                state = "worker" if device.worker else "held" if device.held else "free"
                counts[(f"{device.percent}%", state)] += 1
            for (share, state), count in sorted(counts.items()):
                soft.add_metric([host.name, share, state, "soft"], float(count))
        return soft

    def _controller(self) -> Iterator[Metric]:
        control = self.view.controller
        waiting = GaugeMetricFamily("migctl_fleet_tasks_waiting", "tasks no worker can run now")
        waiting.add_metric([], float(len(self.view.waiting)))
        decisions = CounterMetricFamily(
            "migctl_fleet_decisions",
            "controller decisions by kind and host",
            labels=["kind", "host"],
        )
        for (kind, host), count in sorted(self.host_counts.items()):
            decisions.add_metric([kind, host], float(count))
        cycle = GaugeMetricFamily(
            "migctl_fleet_cycle_seconds", "the last controller cycle's duration"
        )
        cycle.add_metric([], control.last_cycle_s)
        cycles = CounterMetricFamily("migctl_fleet_cycles", "controller cycles run")
        cycles.add_metric([], float(control.cycles))
        rerun = CounterMetricFamily("migctl_fleet_tasks_rerun", "tasks Dask ran a second time")
        rerun.add_metric([], float(control.tasks_rerun))
        lost = CounterMetricFamily(
            "migctl_fleet_tasks_interrupted", "running tasks lost with their worker"
        )
        lost.add_metric([], float(control.tasks_interrupted))
        yield from (waiting, decisions, cycle, cycles, rerun, lost)


def render_metrics(view: FleetStatusOut, controller: FleetController) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetCollector(view, controller.host_counts))
    return generate_latest(registry).decode()


def age(seconds: float | None) -> str:
    """``3 s ago`` for the status table."""
    if seconds is None:
        return "-"
    return (
        f"{seconds:.0f} s ago" if seconds < 3600 else time.strftime("%H:%M", time.gmtime(seconds))
    )
