"""The daemon core: one LocalNode, the daemon's own stores, the job runner and the lease service.

Why this module exists: the REST routes, the metrics endpoint, the dashboard and demand-driven
repartitioning (:attr:`Service.repartition`, a ``Repartitioner`` when ``--repartition on``)
need one place that holds what a daemon has. Everything that reaches the GPUs is a call of the
daemon's one :class:`~migctl.node.local.LocalNode` (:attr:`Service.node`, opened from the
daemon's :class:`~migctl.settings.Settings`: a simulated machine keeps its journal, lease
database and CDI spec in its own directory), under the GPU lock (``gpu``); what only a daemon
does lives here and beside it: authentication, the audit log, tokens, jobs, the layout it
remembers (``desired``) and :meth:`start`, which reconciles the machine with it (``startup``).

Only ``migctl.server`` and the ``migctl serve`` verb import this module.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from migctl import __version__
from migctl.errors import MigctlError
from migctl.node.local import LocalNode, open_local
from migctl.node.protocol import GpuSelection
from migctl.node.targets import Resolved
from migctl.reports import ApplyOutcome, CheckReport, PlanReport
from migctl.schemas.layouts import Target
from migctl.server.audit import AuditLog, Retention
from migctl.server.auth import AdminGroup, Principal, authenticate
from migctl.server.config import ServiceConfig
from migctl.server.desired import DesiredStore, reached
from migctl.server.gpu import GpuAccess
from migctl.server.http_errors import in_request
from migctl.server.jobs import JobRunner, JobStatus, JobStore
from migctl.server.leasing import LeaseService
from migctl.server.peercred import PeerCred
from migctl.server.provisional import Provisional
from migctl.server.repartitioner import Repartitioner
from migctl.server.statedb import StateDB
from migctl.server.telemetry import DaemonMetrics
from migctl.server.threads import Blocking
from migctl.server.tokens import TokenStore
from migctl.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


class Service:
    """Everything one ``migctl serve`` process holds (see the module docstring)."""

    def __init__(self, config: ServiceConfig, node: LocalNode) -> None:
        self.config = config
        self.node = node
        self.db = StateDB(config.state_db)
        self.tokens = TokenStore(self.db)
        self.audit = AuditLog(self.db, Retention(config.audit_max_rows, config.audit_max_age_s))
        self.jobs = JobRunner(JobStore(self.db))
        self.desired = DesiredStore(self.db)
        node.device_cache.max_age_s = config.device_cache_s  # many waiters: read it once
        self.gpu = GpuAccess(node)
        self.blocking = Blocking(config.io_threads)
        self.leases = LeaseService(self.gpu, self.blocking, poll_s=config.wait_poll_s)
        self.leases.provisional = Provisional(self.db, node.store, config.provisional_lease_s)
        self.admins = AdminGroup(config.admin_group)
        self.metrics = DaemonMetrics(self.gpu, self.leases)
        self.repartition: Repartitioner | None = None
        if config.repartition.enabled:
            self.repartition = Repartitioner(self, config.repartition, config.repartition_every_s)
            self.leases.arbiter = self.repartition
        self.started_at = time.time()
        self.startup_notes: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(cls, config: ServiceConfig, settings: Settings) -> Service:
        """The service of the machine ``settings`` name (a simulated one, or this host's)."""
        node = open_local(settings)
        try:
            return cls(config, node)
        except BaseException:
            node.close()
            raise

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Reconcile before serving: repair the journal, re-apply, end vanished leases."""
        from migctl.server.startup import reconcile

        self.startup_notes = reconcile(self)
        return self.startup_notes

    def close(self) -> None:
        self.jobs.shutdown()
        self.blocking.shutdown()
        self.db.close()
        self.node.close()

    def authenticate(self, peer: PeerCred | None, authorization: str | None) -> Principal:
        return authenticate(peer, authorization, self.tokens, self.admins)

    # -- reading ---------------------------------------------------------------------------

    async def on_gpus(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` (a node method) on a worker thread, under the GPU lock."""
        return await self.blocking.run(functools.partial(self.gpu.call, fn, *args, **kwargs))

    def status_counts(self) -> dict[str, Any]:
        store = self.jobs.store
        inventory = self.gpu.call(self.node.inventory)
        return {
            "gpus": len(inventory.gpus),
            "mig_devices": sum(len(view.devices) for view in inventory.gpus),
            "leases_active": len(inventory.leases),
            "lease_waiters": len(self.leases.waits),
            "jobs_queued": store.count(JobStatus.QUEUED),
            "jobs_running": store.count(JobStatus.RUNNING),
            "desired_gpus": sorted(self.desired.targets()),
        }

    def repartition_status(self) -> dict[str, Any]:
        """Demand-driven repartitioning: off, or its policy, budget and reshapes (loop only)."""
        if self.repartition is None:
            return {"mode": "off", "policy": self.config.repartition.model_dump()}
        return {"mode": "on", **self.repartition.status()}

    @property
    def version(self) -> str:
        return __version__

    # -- layouts ---------------------------------------------------------------------------

    def resolve(self, target: Target, gpus: GpuSelection = None) -> Resolved:
        """What ``target`` asks of each GPU, checked before any job: a layout that could never
        exist, or names what this machine lacks, is 422 (its error kind unchanged)."""
        with self.metrics.planning("targets"):
            try:
                return self.gpu.call(self.node.resolve, target, gpus)
            except MigctlError as error:
                in_request(error)
                raise

    def plan(self, target: Target, gpus: GpuSelection, *, force: bool) -> PlanReport:
        """The node's plan (a target that could never exist: 422, see :meth:`resolve`)."""
        self.resolve(target, gpus)
        with self.metrics.planning("plan"):
            return self.gpu.call(self.node.plan, target, gpus=gpus, force=force)

    def check(self, target: Target, gpus: GpuSelection) -> CheckReport:
        """The node's check (a target that could never exist: 422, see :meth:`resolve`)."""
        self.resolve(target, gpus)
        return self.gpu.call(self.node.check, target, gpus=gpus)

    def apply_now(
        self,
        target: Target,
        *,
        gpus: GpuSelection = None,
        force: bool = False,
        dry_run: bool = False,
        by: str,
        job_id: int | None,
    ) -> ApplyOutcome:
        """Apply under the GPU lock (in the calling thread); remember the layout reached."""
        result = "failed"
        started = time.perf_counter()
        with self.gpu.locked() as node:
            try:
                outcome = node.apply(target, gpus=gpus, force=force, dry_run=dry_run)
                result = "noop" if dry_run else reconfiguration_result(outcome)
            finally:
                self.wake_waiters()
                self.metrics.reconfiguration(result, time.perf_counter() - started)
        if outcome.failure is None and not dry_run:
            self.desired.put(reached(outcome), by=by, job_id=job_id)
        return outcome

    def wake_waiters(self) -> None:
        """Tell waiting lease requests that devices may have changed (from any thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.leases.waits.wake_all)


def reconfiguration_result(outcome: ApplyOutcome) -> str:
    """The ``result`` label of ``migctl_reconfigurations_total`` for an apply outcome."""
    if outcome.failure is not None:
        return "failed"
    return "noop" if outcome.noop else "succeeded"
