"""What the daemon does before it serves: make the machine match what it remembers.

Why this module exists: a daemon restart may follow a crash (SIGKILL mid-apply: the engine's
journal is left behind) or a reboot (MIG instances wiped). In order, at every start:

1. the audit log is pruned to its retention; jobs a previous daemon left queued or running are
   marked ``interrupted``;
2. leases granted just before the previous daemon stopped, whose answer may never have reached
   their client, are ended (``revoked``, see ``provisional``), each with an audit row;
3. an apply journal, if any, is repaired by the node's ``recover`` (the interrupted apply is
   completed; busy instances are never destroyed) and its target becomes the desired layout;
4. the desired layout is applied again (the node's ``apply`` of those explicit layouts) if the
   machine no longer matches it;
5. active leases whose MIG device no longer exists are ended (``revoked`` by
   ``migctl-daemon: device no longer exists``), each with an audit row saying why.

Steps 3 and 4 run as jobs (kinds ``startup-recover`` and ``startup-reapply``) so that they show
in ``GET /v1/jobs`` and in the audit log. A failure is reported, never fatal: the daemon still
starts, so that an admin can look and fix it. Only ``Service.start`` calls this module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from migctl.errors import MigctlError
from migctl.schemas.layouts import InstancesTarget
from migctl.schemas.reports import RecoverReportOut
from migctl.server.auth import DAEMON_ACTOR
from migctl.server.changes import outcome_result
from migctl.server.desired import layouts_of
from migctl.server.jobs import Job, JobResult, JobStatus

if TYPE_CHECKING:
    from migctl.server.service import Service

log = logging.getLogger(__name__)
INTERRUPTED = (
    "the daemon stopped while this job was queued or running; at the next start the apply "
    "journal was repaired (see the startup-recover job, if any)"
)


def _audit(service: Service, action: str, target: str | None, ok: bool, **detail: object) -> None:
    service.audit.record(
        actor=DAEMON_ACTOR,
        role="admin",
        via="daemon",
        method="START",
        path="-",
        action=action,
        target=target,
        status=200 if ok else 500,
        detail=dict(detail),
    )


def _repair_journal(service: Service) -> str | None:
    entry = service.gpu.call(service.node.journal).read()
    if entry is None:
        return None

    def work(job: Job) -> JobResult:
        with service.gpu.locked() as node:
            report = node.recover()
        result = RecoverReportOut.of(report).model_dump(mode="json")
        if report.outcome is None:  # another process finished it meanwhile
            return JobResult(JobStatus.SUCCEEDED, "no interrupted apply left", result=result)
        done = outcome_result(report.outcome)
        if done.status == JobStatus.SUCCEEDED:
            service.desired.put(layouts_of(entry.target), by=DAEMON_ACTOR, job_id=job.job_id)
        return JobResult(done.status, done.message, result=result, error=done.error)

    job = service.jobs.run(
        service.jobs.store.create("startup-recover", {"journal": entry.to_dict()}, DAEMON_ACTOR),
        work,
    )
    ok = job.status == JobStatus.SUCCEEDED
    _audit(service, "recover interrupted apply", f"job {job.job_id}", ok, message=job.message)
    return f"repaired an interrupted apply (job {job.job_id}, {job.status}): {job.message}"


def _reapply(service: Service) -> str | None:
    targets = service.desired.targets()
    if not targets:
        return None
    target = InstancesTarget.of(targets)
    try:
        report = service.gpu.call(service.node.plan, target)
    except MigctlError as error:
        _audit(service, "re-apply desired layout", None, False, message=error.message)
        return f"cannot re-apply the desired layout: {error.message}"
    if all(plan.is_noop for plan in report.plans.values()):
        return "the desired layout is in place"

    def work(job: Job) -> JobResult:
        outcome = service.apply_now(target, force=False, by=DAEMON_ACTOR, job_id=job.job_id)
        return outcome_result(outcome)

    request = {"gpus": sorted(targets), "targets": {str(g): "desired" for g in sorted(targets)}}
    job = service.jobs.run(
        service.jobs.store.create("startup-reapply", request, DAEMON_ACTOR), work
    )
    ok = job.status == JobStatus.SUCCEEDED
    _audit(service, "re-apply desired layout", f"job {job.job_id}", ok, message=job.message)
    return f"re-applied the desired layout (job {job.job_id}, {job.status}): {job.message}"


def _end_unconfirmed_leases(service: Service) -> str | None:
    provisional = service.leases.provisional
    ended = provisional.end_unconfirmed() if provisional is not None else []
    for lease in ended:
        _audit(
            service,
            "end lease: never delivered",
            f"lease {lease.lease_id}",
            True,
            uuid=lease.uuid,
            user=lease.user,
            reason="granted as the daemon stopped: its answer may never have reached the client;"
            " ended at daemon start",
        )
    if not ended:
        return None
    ids = ", ".join(str(lease.lease_id) for lease in ended)
    return f"ended {len(ended)} lease(s) granted as the daemon stopped, never delivered: {ids}"


def _end_vanished_leases(service: Service) -> str | None:
    ended = service.leases.end_vanished()
    for lease in ended:
        _audit(
            service,
            "end lease: device gone",
            f"lease {lease.lease_id}",
            True,
            uuid=lease.uuid,
            user=lease.user,
            reason="its MIG device no longer exists (reboot or GPU reset); ended at daemon start",
        )
    if not ended:
        return None
    ids = ", ".join(str(lease.lease_id) for lease in ended)
    return f"ended {len(ended)} lease(s) whose device no longer exists: {ids}"


def reconcile(service: Service) -> list[str]:
    """Run the start-up steps in the module docstring; one note per thing done."""
    notes: list[str] = []
    pruned = service.audit.prune()
    if pruned:
        notes.append(f"pruned {pruned} audit row(s) beyond the audit log's retention")
    interrupted = service.jobs.store.interrupt_unfinished(INTERRUPTED)
    if interrupted:
        notes.append("marked interrupted: job " + ", ".join(map(str, interrupted)))
    for step in (_end_unconfirmed_leases, _repair_journal, _reapply, _end_vanished_leases):
        try:
            note = step(service)
        except MigctlError as error:
            log.error("start-up step %s failed: %s", step.__name__, error)
            note = f"{step.__name__.strip('_').replace('_', ' ')} failed: {error.message}"
        if note:
            log.info("start-up: %s", note)
            notes.append(note)
    return notes
