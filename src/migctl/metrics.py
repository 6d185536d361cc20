"""Prometheus metrics: the machine (GPUs, MIG devices, soft devices, memory, processes, leases)
and the service.

Why this exists: operators graph and alert on who uses which slice. ``MachineCollector``
reads the machine at scrape time through the backend (so values are never stale) and the
lease store; ``ServiceMetrics`` holds the daemon's own counters and histograms (waiting
requests, reconfigurations, planner latency, API requests). Names follow Prometheus
conventions: ``migctl_`` prefix, base units (bytes, seconds), ``_total`` for counters.
``render(backend)`` gives the text format for ``migctl metrics`` without a daemon.
Every device says how isolated it is: MIG devices ``isolation="mig"``, soft devices (MPS
shares) ``isolation="soft"`` (no fault or memory-bandwidth isolation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from migctl.backends.base import Backend
from migctl.inventory import GpuView, machine_view
from migctl.reports import SoftDeviceView

MIB = 1024 * 1024
DEVICE_LABELS = ["gpu", "gi", "ci", "uuid", "profile", "gi_profile", "placement", "isolation"]
SOFT_LABELS = ["gpu", "uuid", "parent", "share_percent", "isolation"]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class MachineCollector(Collector):
    """Reads GPUs, MIG devices and leases when Prometheus scrapes."""

    def __init__(
        self,
        backend: Backend,
        leases: Callable[[], dict[str, str]] | None = None,
        lock: AbstractContextManager[Any] | None = None,
        soft: Callable[[], Sequence[SoftDeviceView]] | None = None,
    ) -> None:
        self.backend = backend
        self.leases = leases or (dict)
        self.lock = lock or threading.Lock()
        self.soft = soft or (list)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected dynamically: no fixed description

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            views = machine_view(self.backend)
        yield from machine_metrics(views, self.leases(), self.soft())


def machine_metrics(
    views: list[GpuView], holders: dict[str, str], soft: Sequence[SoftDeviceView] = ()
) -> Iterator[Metric]:
    """The machine's metric families: GPUs and MIG devices from ``views``, lease holders by MIG
    device UUID from ``holders``, soft devices from ``soft`` (the daemon reads all three through
    its node)."""
    yield from _gpu_metrics(views)
    yield from _device_metrics(views, holders)
    yield from _soft_metrics(soft)


def _gpu_metrics(views: list[GpuView]) -> Iterator[Metric]:
    info = _gauge(
        "migctl_gpu_info", "A GPU (value 1), with its identity", ["gpu", "uuid", "name", "model"]
    )
    total = _gauge("migctl_gpu_memory_total_bytes", "GPU memory", ["gpu"])
    used = _gauge("migctl_gpu_memory_used_bytes", "GPU memory in use", ["gpu"])
    mig = _gauge("migctl_gpu_mig_enabled", "MIG mode in force (1) or not (0)", ["gpu"])
    pending = _gauge(
        "migctl_gpu_mig_change_pending", "A MIG mode change waits for a reset", ["gpu"]
    )
    slices = _gauge("migctl_gpu_memory_slices", "MIG memory slices of the GPU", ["gpu"])
    taken = _gauge("migctl_gpu_memory_slices_used", "Memory slices held by GPU instances", ["gpu"])
    procs = _gauge("migctl_gpu_processes", "Compute processes on the GPU", ["gpu"])
    for view in views:
        gpu = str(view.info.index)
        info.add_metric(
            [gpu, view.info.uuid, view.info.name, view.model.key if view.model else ""], 1
        )
        total.add_metric([gpu], view.info.memory_total_mib * MIB)
        used.add_metric([gpu], view.info.memory_used_mib * MIB)
        procs.add_metric([gpu], len(view.processes))
        if view.info.mig is not None:
            mig.add_metric([gpu], int(view.info.mig.current))
            pending.add_metric([gpu], int(view.info.mig.change_pending))
        if view.memory_slices:
            slices.add_metric([gpu], view.memory_slices)
            taken.add_metric([gpu], sum(i.gi.placement.size for i in view.instances))
    yield from (info, total, used, mig, pending, slices, taken, procs)


def _device_metrics(views: list[GpuView], holders: dict[str, str]) -> Iterator[Metric]:
    info = _gauge("migctl_mig_device_info", "A MIG device (value 1)", DEVICE_LABELS)
    total = _gauge("migctl_mig_device_memory_total_bytes", "MIG device memory", DEVICE_LABELS)
    used = _gauge("migctl_mig_device_memory_used_bytes", "MIG device memory in use", DEVICE_LABELS)
    procs = _gauge("migctl_mig_device_processes", "Processes on the MIG device", DEVICE_LABELS)
    leased = _gauge(
        "migctl_mig_device_leased", "1 while the MIG device is leased", [*DEVICE_LABELS, "holder"]
    )
    count = _gauge("migctl_leases_active", "Active leases on this machine's MIG devices", [])
    active = 0
    for view in views:
        for device in view.devices:
            labels = [
                str(device.gpu_index),
                str(device.gi_id),
                str(device.ci_id),
                device.uuid,
                device.ci_profile,
                device.gi_profile,
                str(device.placement),
                "mig",
            ]
            info.add_metric(labels, 1)
            total.add_metric(labels, device.memory_total_mib * MIB)
            used.add_metric(labels, device.memory_used_mib * MIB)
            procs.add_metric(labels, len(device.processes))
            holder = holders.get(device.uuid)
            leased.add_metric([*labels, holder or ""], int(holder is not None))
            active += int(holder is not None)
    count.add_metric([], active)
    yield from (info, total, used, procs, leased, count)


def _soft_metrics(devices: Sequence[SoftDeviceView]) -> Iterator[Metric]:
    info = _gauge(
        "migctl_soft_device_info",
        "A soft device (value 1): an MPS share of a GPU or MIG device; isolation soft: no fault "
        "or memory-bandwidth isolation",
        SOFT_LABELS,
    )
    share = _gauge("migctl_soft_device_share_ratio", "The SM share (0-1)", SOFT_LABELS)
    limit = _gauge(
        "migctl_soft_device_memory_limit_bytes", "The pinned device-memory limit", SOFT_LABELS
    )
    leased = _gauge(
        "migctl_soft_device_leased", "1 while the soft device is leased", [*SOFT_LABELS, "holder"]
    )
    server = _gauge(
        "migctl_mps_server_running", "1 while the parent's MPS control daemon runs", ["parent"]
    )
    seen: set[str] = set()
    for device in devices:
        labels = [
            str(device.gpu_index),
            device.uuid,
            device.parent_uuid,
            str(device.percent),
            device.isolation,
        ]
        info.add_metric(labels, 1)
        share.add_metric(labels, device.percent / 100)
        limit.add_metric(labels, device.memory_limit_mib * MIB)
        holder = device.lease.user if device.lease is not None else ""
        leased.add_metric([*labels, holder], int(device.lease is not None))
        if device.parent_uuid not in seen:
            seen.add(device.parent_uuid)
            server.add_metric([device.parent_uuid], int(device.server == "running"))
    yield from (info, share, limit, leased, server)


class ServiceMetrics:
    """The daemon's own metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.waiting = Gauge(
            "migctl_lease_requests_waiting", "Lease requests in the queue", registry=registry
        )
        self.reconfigurations = Counter(
            "migctl_reconfigurations",
            "Repartitions done by the daemon",
            ["result"],
            registry=registry,
        )
        self.reconfiguration_seconds = Histogram(
            "migctl_reconfiguration_duration_seconds",
            "Time to apply a repartition",
            registry=registry,
        )
        self.planner_seconds = Histogram(
            "migctl_planner_duration_seconds",
            "Time the planner took",
            ["what"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )
        self.requests = Counter(
            "migctl_http_requests", "API requests", ["method", "route", "status"], registry=registry
        )
        self.request_seconds = Histogram(
            "migctl_http_request_duration_seconds",
            "API request latency",
            ["method", "route"],
            registry=registry,
        )


def leases_by_uuid(lease_db: Path | None) -> dict[str, str]:
    """Active lease holders by MIG device UUID (empty without a lease store)."""
    from migctl.leases import LeaseStore

    path = lease_db
    if path is None or not path.exists():
        return {}
    with LeaseStore(path) as store:
        return {lease.uuid: lease.user for lease in store.list_leases(active_only=True)}


def render(
    backend: Backend,
    lease_db: Path | None,
    soft: Sequence[SoftDeviceView] = (),
    **collector_options: Any,
) -> bytes:
    """The machine's metrics in the Prometheus text format (``migctl metrics``); ``soft``: its
    soft devices (``LocalNode.soft_devices``)."""
    registry = CollectorRegistry()

    def leases() -> dict[str, str]:
        return leases_by_uuid(lease_db)

    registry.register(
        MachineCollector(backend, leases=leases, soft=lambda: soft, **collector_options)
    )
    return generate_latest(registry)
