"""The daemon's Prometheus metrics: one registry per service, the machine read at scrape time.

Why this module exists: ``GET /metrics`` must show both what the machine looks like now (GPUs,
MIG devices, memory, processes, lease holders: ``migctl.metrics.MachineCollector``) and what the
daemon did (waiting lease requests, reconfigurations, planner and HTTP latency:
``migctl.metrics.ServiceMetrics``; reshapes by demand-driven repartitioning, registered
here). :class:`DaemonMetrics` holds the service's registry, feeds the counters (the service
calls :meth:`planning` and :meth:`reconfiguration`, the repartitioner :meth:`repartition`, the
HTTP middleware :meth:`observe_http`) and renders a scrape for one viewer.

The machine is read through the service's one ``LocalNode`` (its inventory, with the active
leases) under its GPU lock, so a scrape never races an apply. Lease holders follow the API's
privacy rule (``Principal.may_see``): admins see every holder's user name; a user sees their own
name and :data:`HIDDEN_HOLDER` for other users' leases; an anonymous scrape
(``--metrics-public``) sees :data:`HIDDEN_HOLDER` for all.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from migctl.leases import Lease
from migctl.metrics import ServiceMetrics, machine_metrics
from migctl.server.auth import Principal
from migctl.server.gpu import GpuAccess
from migctl.server.leasing import LeaseService

HIDDEN_HOLDER = "(another user)"  # never a valid user name, so it cannot collide with one
REPARTITION_RESULTS = ("succeeded", "refused", "failed")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class DaemonMetrics:
    """The registry of one :class:`~migctl.server.service.Service` (see the module docstring)."""

    def __init__(self, gpu: GpuAccess, leases: LeaseService) -> None:
        # No ``*_created`` series: in the text format they are extra gauges per counter and
        # histogram child that no one graphs. A process-wide setting; the daemon owns its process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.service = ServiceMetrics(self.registry)
        self._gpu = gpu
        self._leases = leases
        self.service.waiting.set_function(lambda: len(leases.waits.queued()))
        self.repartitions = Counter(
            "migctl_repartitions",
            "Reshapes of idle instances for waiting lease requests, by result",
            ["result"],
            registry=self.registry,
        )
        for result in REPARTITION_RESULTS:  # every series exists from the start, at 0
            self.repartitions.labels(result=result)

    # -- what the daemon did ---------------------------------------------------------------

    @contextmanager
    def planning(self, what: str) -> Iterator[None]:
        """Time a planner call (``what``: ``plan`` or ``targets``), failed ones included."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.service.planner_seconds.labels(what=what).observe(time.perf_counter() - started)

    def reconfiguration(self, result: str, seconds: float) -> None:
        """Count an apply by ``result`` (``succeeded``, ``failed``, ``noop``); time real ones."""
        self.service.reconfigurations.labels(result=result).inc()
        if result != "noop":
            self.service.reconfiguration_seconds.observe(seconds)

    def repartition(self, result: str) -> None:
        """Count a reshape by ``result``: ``succeeded``, ``refused`` (nothing changed: the GPU
        changed since the decision, or the engine found an instance in use) or ``failed``."""
        self.repartitions.labels(result=result).inc()

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the route's template, never the raw path."""
        method = method if method in KNOWN_METHODS else "OTHER"
        self.service.requests.labels(method=method, route=route, status=str(status)).inc()
        self.service.request_seconds.labels(method=method, route=route).observe(seconds)

    # -- scrapes ---------------------------------------------------------------------------

    @staticmethod
    def holders(leases: list[Lease], viewer: Principal | None) -> dict[str, str]:
        """Active lease holders by MIG device UUID, as ``viewer`` may see them."""
        shown = {}
        for lease in leases:
            visible = viewer is not None and viewer.may_see(lease.user)
            shown[lease.uuid] = lease.user if visible else HIDDEN_HOLDER
        return shown

    def exposition(self, viewer: Principal | None) -> bytes:
        """The Prometheus text format: the daemon's metrics, then the machine's, read now.

        The machine collector is registered per scrape because its lease holders depend on
        who asks; the daemon's counters live in :attr:`registry` for the daemon's lifetime.
        """
        machine = CollectorRegistry()
        machine.register(_MachineNow(self._gpu, viewer))
        return generate_latest(self.registry) + generate_latest(machine)


class _MachineNow(Collector):
    """The machine read through the node at scrape time, lease holders as ``viewer`` sees them."""

    def __init__(self, gpu: GpuAccess, viewer: Principal | None) -> None:
        self._gpu = gpu
        self._viewer = viewer

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected dynamically: no fixed description

    def collect(self) -> Iterator[Metric]:
        inventory = self._gpu.call(self._gpu.node.inventory)
        holders = DaemonMetrics.holders(inventory.leases, self._viewer)
        yield from machine_metrics(inventory.gpus, holders, inventory.soft)
