"""The daemon core: one object that owns the backend, the stores and the job runner.

Why this module exists: the REST routes, the metrics endpoint, the dashboard and demand-driven
repartitioning (:attr:`Service.repartition`, a ``Repartitioner`` when ``--repartition on``)
need one place to ask "what is there", "plan this", "apply this as
a job", "lease for this principal". :class:`Service` is that place; routes stay thin. It is
built from a :class:`ServiceConfig` and an opened backend (the daemon opens exactly one), and
:meth:`start` reconciles the machine with what the daemon remembers (see ``startup``).

The daemon points ``MIGCTL_LEASE_DB`` and ``MIGCTL_STATE_DIR`` at its own files at start, so the
engine (which marks leased instances busy and keeps its apply journal there) sees the same
leases and journal as the daemon.

Only ``migctl.server`` and the ``migctl serve`` verb import this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from migctl import __version__
from migctl.backends.base import Backend
from migctl.catalog import Catalog, load_catalog
from migctl.engine.apply import apply, plan_machine
from migctl.engine.codec import targets_to_dict
from migctl.engine.disturb import disturbed
from migctl.engine.export import current_layouts
from migctl.engine.files import MachineFiles
from migctl.errors import MigctlError, NotFoundError, NotSupportedError
from migctl.inventory import GpuProfiles, GpuView, machine_view
from migctl.leases import Lease, LeaseStore
from migctl.node.soft import mps_host
from migctl.planner import DesiredLayout, Plan
from migctl.reports import ApplyOutcome
from migctl.server import layouts
from migctl.server.audit import AuditLog, Retention
from migctl.server.auth import AdminGroup, Principal, authenticate
from migctl.server.config import ServiceConfig
from migctl.server.gpu import GpuAccess
from migctl.server.jobs import Job, JobResult, JobRunner, JobStatus, JobStore
from migctl.server.leasing import LeaseService
from migctl.server.peercred import PeerCred
from migctl.server.provisional import Provisional
from migctl.server.repartitioner import Repartitioner
from migctl.server.requests import LayoutRequest
from migctl.server.statedb import StateDB
from migctl.server.telemetry import DaemonMetrics
from migctl.server.threads import Blocking
from migctl.server.tokens import TokenStore
from migctl.settings import Settings
from migctl.workflow import refuse_disable_with_instances

log = logging.getLogger(__name__)


class Service:
    """Everything one ``migctl serve`` process holds (see the module docstring)."""

    def __init__(
        self, config: ServiceConfig, backend: Backend, catalog: Catalog | None = None
    ) -> None:
        self.config = config
        self.catalog = catalog or load_catalog()
        self.files = MachineFiles(config.lease_db, backend.files_dir or config.state_dir)
        self.settings = Settings.from_env().for_machine(backend.files_dir)
        self.db = StateDB(config.state_db)
        self.tokens = TokenStore(self.db)
        self.audit = AuditLog(self.db, Retention(config.audit_max_rows, config.audit_max_age_s))
        self.jobs = JobRunner(JobStore(self.db))
        self.desired = layouts.DesiredStore(self.db)
        self.gpu = GpuAccess(backend, cache_s=config.device_cache_s)
        self.blocking = Blocking(config.io_threads)
        self.leases = LeaseService(
            LeaseStore(config.lease_db), self.gpu, self.blocking, poll_s=config.wait_poll_s
        )
        self.leases.provisional = Provisional(
            self.db, self.leases.store, config.provisional_lease_s
        )
        owner = self.settings.replace(lease_db=config.lease_db)  # soft devices (MPS)
        self.leases.mps = mps_host(owner, backend.files_dir)
        self.admins = AdminGroup(config.admin_group)
        self.metrics = DaemonMetrics(self.gpu, self.leases)
        self.repartition: Repartitioner | None = None
        if config.repartition.enabled:
            self.repartition = Repartitioner(self, config.repartition, config.repartition_every_s)
            self.leases.arbiter = self.repartition
        self.started_at = time.time()
        self.startup_notes: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Reconcile before serving: repair the journal, re-apply, end vanished leases."""
        from migctl.server.startup import reconcile

        self.startup_notes = reconcile(self)
        return self.startup_notes

    def close(self) -> None:
        self.jobs.shutdown()
        self.blocking.shutdown()
        self.leases.store.close()
        self.db.close()
        self.gpu.backend.close()

    def authenticate(self, peer: PeerCred | None, authorization: str | None) -> Principal:
        return authenticate(peer, authorization, self.tokens, self.admins)

    # -- reading ---------------------------------------------------------------------------

    def machine(self) -> tuple[list[GpuView], list[Lease]]:
        """Every GPU with instances, devices and processes, and the active leases."""
        with self.gpu.locked() as backend:
            views = machine_view(backend)
        return views, self.leases.store.list_leases()

    def profiles(self, index: int) -> GpuProfiles:
        """One GPU's live geometry, GI profile counts, and each GI's CI profile counts."""
        with self.gpu.locked() as backend:
            info = backend.gpu(index)
            if info.mig is None:
                raise NotSupportedError(
                    f"GPU {index} ({info.name}) does not support MIG",
                    hint="see `migctl catalog` for the GPUs that do",
                )
            instances = backend.gpu_instances(index) if info.mig.current else []
            return GpuProfiles(
                index,
                backend.live_model(index),
                backend.gi_profiles(index),
                {gi.id: backend.ci_profiles(index, gi.id) for gi in instances},
            )

    def status_counts(self) -> dict[str, Any]:
        store = self.jobs.store
        with self.gpu.locked() as backend:
            gpus, driver = len(backend.gpus()), backend.driver_version()
        return {
            "gpus": gpus,
            "mig_devices": len(self.gpu.candidates()),
            "leases_active": len(self.leases.store.list_leases()),
            "lease_waiters": len(self.leases.waits),
            "jobs_queued": store.count(JobStatus.QUEUED),
            "jobs_running": store.count(JobStatus.RUNNING),
            "desired_gpus": sorted(self.desired.targets()),
            "driver_version": driver,
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

    def targets_for(
        self, request: LayoutRequest
    ) -> tuple[dict[int, DesiredLayout], tuple[str, ...]]:
        """Checked targets of a plan/apply request (422 when they could never exist)."""
        models = self.gpu.models()
        with self.metrics.planning("targets"):
            targets, reasons = layouts.resolve(request, models)
            layouts.check_reachable(targets, models)
        return targets, reasons

    def plan(
        self, targets: Mapping[int, DesiredLayout], *, force: bool
    ) -> tuple[dict[int, Plan], dict[int, list[str]]]:
        """The plans reaching ``targets`` and, per GPU, the MIG devices they would destroy."""
        with self.gpu.locked() as backend, self.metrics.planning("plan"):
            plans, _ = plan_machine(backend, targets, force=force, files=self.files)
            return plans, disturbed(backend, plans, self.files)

    def submit_apply(
        self, targets: dict[int, DesiredLayout], *, force: bool, by: Principal, kind: str = "apply"
    ) -> Job:
        request = {"targets": targets_to_dict(targets), "force": force}

        def work(job: Job) -> JobResult:
            return self.apply_now(targets, force=force, by=by.name, job_id=job.job_id)

        return self.jobs.submit(kind, request, by.name, work)

    def submit_mig_mode(self, gpu: int, *, enabled: bool, force: bool, by: Principal) -> Job:
        if gpu not in self.gpu.models():
            raise NotFoundError(
                f"GPU {gpu} does not exist or cannot do MIG",
                hint="MIG GPUs: " + ", ".join(map(str, sorted(self.gpu.models()))),
                context={"gpu": gpu},
            )
        request = {"gpu": gpu, "enabled": enabled, "force": force}
        refuse = not enabled and not force  # the rule of `mode disable`, as locally
        if refuse:
            with self.gpu.locked() as backend:
                refuse_disable_with_instances(backend, gpu)  # 409 before any job

        def work(job: Job) -> JobResult:
            with self.gpu.locked() as backend:
                if refuse:  # an apply may have made instances since
                    refuse_disable_with_instances(backend, gpu)
                now = current_layouts(backend, [gpu]).get(gpu, DesiredLayout((), False))
            keep = now.gis if enabled and now.mig_enabled else ()
            target = {gpu: DesiredLayout(keep, enabled)}
            return self.apply_now(target, force=force, by=by.name, job_id=job.job_id)

        return self.jobs.submit("mig-mode", request, by.name, work)

    def apply_now(
        self, targets: Mapping[int, DesiredLayout], *, force: bool, by: str, job_id: int | None
    ) -> JobResult:
        """Apply under the GPU lock (in the calling thread); remember the layout on success."""
        result = "failed"
        started = time.perf_counter()
        with self.gpu.locked() as backend:
            self.gpu.invalidate()
            try:
                outcome = apply(backend, targets, force=force, files=self.files)
                result = reconfiguration_result(outcome)
                if outcome.changed or outcome.rolled_back:
                    _refresh_cdi(backend, self.settings)
            finally:
                self.gpu.invalidate()
                self.wake_waiters()
                self.metrics.reconfiguration(result, time.perf_counter() - started)
        if outcome.error is None and outcome.rollback_error is None:
            self.desired.put(targets, by=by, job_id=job_id)
        return outcome_result(outcome)

    def wake_waiters(self) -> None:
        """Tell waiting lease requests that devices may have changed (from any thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.leases.waits.wake_all)


def _refresh_cdi(backend: Backend, settings: Settings) -> None:
    """Keep the CDI spec in step with the MIG devices, as the CLI's apply does.

    A spec that cannot be written is logged, not raised: the apply itself succeeded, and the
    next change (or ``migctl cdi generate``) writes it again.
    """
    from migctl.tenancy.cdi import refresh_if_in_use

    try:
        path = refresh_if_in_use(
            backend,
            settings.cdi_path,
            explicit="cdi_path" in settings.explicit,
            proc_root=settings.proc_root,
        )
    except (MigctlError, OSError) as error:
        log.error("the CDI spec could not be refreshed after the apply: %s", error)
        return
    if path is not None:
        log.info("refreshed the CDI spec %s", path)


def reconfiguration_result(outcome: ApplyOutcome) -> str:
    """The ``result`` label of ``migctl_reconfigurations_total`` for an apply outcome."""
    if outcome.rollback_error is not None or outcome.error is not None:
        return "failed"
    return "noop" if outcome.noop else "succeeded"


def outcome_result(outcome: ApplyOutcome) -> JobResult:
    """An apply outcome as a job result with a one-line message."""
    from migctl.schemas.reports import ApplyResultOut

    result = ApplyResultOut.of_outcome(outcome).model_dump(mode="json")
    failure = outcome.rollback_error or outcome.error
    if failure is not None:
        restored = "restored" if outcome.rolled_back else "NOT restored (see `migctl recover`)"
        message = f"failed: {failure.message}; the state before the apply was {restored}"
        return JobResult(JobStatus.FAILED, message, result=result, error=failure.to_dict())
    if outcome.noop:
        message = "the machine already matched the layout: nothing to do"
    else:
        done = sum(outcome.executed.values())
        message = f"applied: {done} operation(s)"
    if outcome.pending:
        gpus = ", ".join(map(str, sorted(outcome.pending)))
        message += f"; GPU {gpus}: MIG mode change waits for a GPU reset"
    if outcome.recovered:
        message += f"; {outcome.recovered}"
    return JobResult(JobStatus.SUCCEEDED, message, result=result)
