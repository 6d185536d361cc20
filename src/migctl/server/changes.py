"""The changes an admin may ask of the daemon's GPUs: checked at once, then run as jobs.

Why this module exists: apply, recover, MIG mode and explicit instances change the GPUs. Each
request is checked before a job is queued (a target that can never exist, an unknown GPU, a
mode change that would be refused: a 4xx answer, nothing changed); the change then runs as a
job (one at a time, on the job thread) that calls the daemon's ``LocalNode`` under the GPU lock.
A job's ``result`` is the wire schema of what the node returned (``ApplyResultOut``,
``RecoverReportOut``, ``ModeChangesOut``, ``GpuInstancesOut``, ``ComputeInstancesOut``,
``DestroyedOut``), also for an apply that failed and rolled back, so ``RemoteNode`` reads back
the value a ``LocalNode`` returns; a failure carries migctl's error shape, so the client raises
the same class. After each change the daemon remembers the layout reached (``desired``) and
wakes waiting lease requests. Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from migctl.node.local import LocalNode
from migctl.node.modes import check_mode
from migctl.reports import ApplyOutcome
from migctl.schemas.changes import ModeRequest, RecoverRequest
from migctl.schemas.layouts import ApplyRequest, LayoutTarget
from migctl.schemas.reports import ApplyResultOut, ModeChangeOut, ModeChangesOut, RecoverReportOut
from migctl.server.audit_detail import digest
from migctl.server.auth import Principal
from migctl.server.desired import layout_of, reached
from migctl.server.jobs import Job, JobResult, JobStatus

if TYPE_CHECKING:
    from migctl.server.service import Service

T = TypeVar("T")


def submit_apply(service: Service, body: ApplyRequest, by: Principal) -> tuple[Job, list[int]]:
    """Check the target (4xx when it can never exist), queue the apply; the job and its GPUs."""
    gpus = sorted(service.resolve(body.target, body.gpus).targets)

    def work(job: Job) -> JobResult:
        outcome = service.apply_now(
            body.target,
            gpus=body.gpus,
            force=body.force,
            dry_run=body.dry_run,
            by=by.name,
            job_id=job.job_id,
        )
        return outcome_result(outcome)

    request = {"target": target_record(body.target), "gpus": gpus, "force": body.force}
    return service.jobs.submit("apply", request, by.name, work), gpus


def submit_recover(service: Service, body: RecoverRequest, by: Principal) -> Job:
    """Queue the repair (or roll-back) of an interrupted apply."""

    def work(job: Job) -> JobResult:
        with service.gpu.locked() as node:
            try:
                report = node.recover(rollback=body.rollback)
            finally:
                service.wake_waiters()
        result = RecoverReportOut.of(report).model_dump(mode="json")
        if report.outcome is None:
            return JobResult(JobStatus.SUCCEEDED, "no interrupted apply", result=result)
        done = outcome_result(report.outcome)
        if done.status == JobStatus.SUCCEEDED:
            service.desired.put(reached(report.outcome), by=by.name, job_id=job.job_id)
        return JobResult(done.status, done.message, result=result, error=done.error)

    return service.jobs.submit("recover", {"rollback": body.rollback}, by.name, work)


def submit_mode(service: Service, body: ModeRequest, by: Principal) -> tuple[Job, list[int]]:
    """Check every GPU first (a refusal is 4xx, before any job), then queue the mode change."""
    gpus = service.gpu.call(
        check_mode, service.node, body.gpus, enabled=body.enabled, force=body.force
    )

    def change(node: LocalNode) -> ModeChangesOut:
        found = node.set_mode(gpus, enabled=body.enabled, force=body.force)
        return ModeChangesOut(changes=[ModeChangeOut.of(c) for c in found])

    def says(out: ModeChangesOut) -> str:
        word = "enabled" if body.enabled else "disabled"
        waiting = [c.gpu for c in out.changes if c.pending]
        text = f"MIG mode {word} on GPU {', '.join(map(str, gpus)) or 'none'}"
        return text + (f"; GPU {', '.join(map(str, waiting))} waits for a reset" if waiting else "")

    request = {"gpus": gpus, "enabled": body.enabled, "force": body.force}
    job = submit_change(
        service,
        "mig-mode",
        request,
        by,
        change=change,
        says=says,
        gpus=gpus,
        mig_enabled=body.enabled,
    )
    return job, gpus


def submit_change(
    service: Service,
    kind: str,
    request: dict[str, Any],
    by: Principal,
    *,
    change: Callable[[LocalNode], T],
    says: Callable[[T], str],
    gpus: Sequence[int],
    mig_enabled: bool | None = None,
) -> Job:
    """Queue ``change(node)`` as a job whose result is the schema it returns; then remember
    the layout of ``gpus`` (MIG mode ``mig_enabled`` when given: a change may wait for a reset)."""

    def work(job: Job) -> JobResult:
        with service.gpu.locked() as node:
            try:
                out = change(node)
                views = node.inventory(list(gpus)).gpus if gpus else []
            finally:
                service.wake_waiters()
        remembered = {view.info.index: layout_of(view, mig_enabled) for view in views}
        service.desired.put(remembered, by=by.name, job_id=job.job_id)
        assert isinstance(out, BaseModel)
        return JobResult(JobStatus.SUCCEEDED, says(out), result=out.model_dump(mode="json"))

    return service.jobs.submit(kind, request, by.name, work)


def target_record(target: object) -> dict[str, Any]:
    """A target as a job's request records it: a layout file's text only as its digest."""
    assert isinstance(target, BaseModel)
    record = target.model_dump(mode="json", exclude_none=True)
    if isinstance(target, LayoutTarget):
        record["text"] = digest(target.text)
    return record


def outcome_result(outcome: ApplyOutcome) -> JobResult:
    """An apply outcome as a job result (the ``ApplyResultOut``) with a one-line message."""
    result = ApplyResultOut.of_outcome(outcome).model_dump(mode="json")
    failure = outcome.failure
    if failure is not None:
        restored = "restored" if outcome.rolled_back else "NOT restored (see `migctl recover`)"
        message = f"failed: {failure.message}; the state before the apply was {restored}"
        return JobResult(JobStatus.FAILED, message, result=result, error=failure.to_dict())
    if outcome.dry_run:
        message = "dry run: nothing was changed"
    elif outcome.noop:
        message = "the machine already matched the layout: nothing to do"
    else:
        message = f"applied: {sum(outcome.executed.values())} operation(s)"
    if outcome.pending:
        gpus = ", ".join(map(str, sorted(outcome.pending)))
        message += f"; GPU {gpus}: MIG mode change waits for a GPU reset"
    if outcome.recovered:
        message += f"; {outcome.recovered}"
    return JobResult(JobStatus.SUCCEEDED, message, result=result)
