"""One reshape of idle instances as a daemon job: check, apply through the engine, lease.

Why this module exists: a reshape decided by the repartitioner changes a GPU, so it runs like
every other change: as a job (kind ``repartition``, by ``migctl-daemon``: it shows in
``GET /v1/jobs``, on the dashboard and in the metrics), through ``Service.apply_now`` (the
node's apply of the GPU's new layout: journal, checkpoint, rollback, and its busy checks: the
apply is *never* forced, so an instance that was leased or started a process since the decision
makes the engine refuse instead of destroying it), under the GPU lock. While still holding the
lock it leases each new device to the request it was made for (``LocalNode.acquire`` of that
device's UUID), so no other request can take it first. Every reshape
leaves an audit row (action ``repartition``) and counts in ``migctl_repartitions_total``.

Runs on the job thread. Only ``migctl.server.repartitioner`` imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from migctl.errors import MigctlError
from migctl.leases import Lease, LeaseOwner
from migctl.node.local import LocalNode
from migctl.planner import CurrentGpu
from migctl.repartition import NewDeviceGrant, Reshape, layout_to_dict
from migctl.schemas.layouts import InstancesTarget
from migctl.schemas.leases import LeaseRequest
from migctl.server.auth import DAEMON_ACTOR
from migctl.server.changes import outcome_result
from migctl.server.jobs import Job, JobResult, JobStatus
from migctl.server.repartition_view import GiKey, live_gi_keys

if TYPE_CHECKING:
    from migctl.server.service import Service

log = logging.getLogger(__name__)
JOB_KIND = "repartition"
OUTCOME_KEY = "repartition"  # in the job's result: succeeded, refused (nothing changed), failed


@dataclass(frozen=True)
class Ticket:
    """A decided reshape and what the job needs to carry it out."""

    reshape: Reshape
    decided: CurrentGpu  # the GPU as the decision saw it
    seen_gis: frozenset[GiKey]
    owners: Mapping[str, tuple[LeaseOwner, float | None]]  # request id -> (owner, TTL)
    started_s: float = 0.0  # when it was decided (counts against the hourly budget)

    @property
    def gpu_index(self) -> int:
        return self.reshape.gpu_index

    def job_request(self) -> dict[str, Any]:
        """The job's ``request``: the GPU's new layout (``targets``, as applies have) and why."""
        reshape = self.reshape
        return {
            "targets": {str(reshape.gpu_index): layout_to_dict(reshape.layout)},
            "destroyed_gi_ids": list(reshape.destroyed_gi_ids),
            "grants": [
                {**grant.to_dict(), "user": self.owners[grant.request_id][0].user}
                for grant in reshape.grants
                if grant.request_id in self.owners
            ],
        }


@dataclass
class Outcome:
    """How a reshape job ended: its result and the leases of the new devices by request id."""

    result: JobResult
    leases: dict[str, Lease] = field(default_factory=dict)
    label: str = "failed"  # migctl_repartitions_total's result


def run_reshape(
    service: Service, ticket: Ticket, job: Job, still_waiting: Callable[[str], bool]
) -> Outcome:
    """Check, apply and lease (see the module docstring); never raises a ``MigctlError``."""
    gpu = ticket.gpu_index
    with service.gpu.locked() as node:
        if live_gi_keys(node, gpu) != ticket.seen_gis:
            message = f"refused: GPU {gpu} changed since the decision; deciding again"
            outcome = Outcome(JobResult(JobStatus.FAILED, message), label="refused")
        else:
            outcome = _apply(service, ticket, job)
        if outcome.result.status == JobStatus.SUCCEEDED:
            outcome.leases = _lease_new_devices(service, node, ticket, still_waiting)
            outcome.result = _described(ticket, outcome)
    result = outcome.result
    outcome.result = replace(result, result={**(result.result or {}), OUTCOME_KEY: outcome.label})
    service.metrics.repartition(outcome.label)
    _audit(service, ticket, job, outcome)
    return outcome


def _apply(service: Service, ticket: Ticket, job: Job) -> Outcome:
    target = InstancesTarget.of({ticket.gpu_index: ticket.reshape.layout})
    try:
        applied = service.apply_now(target, force=False, by=DAEMON_ACTOR, job_id=job.job_id)
    except MigctlError as error:  # the engine refused before changing anything
        message = f"refused: {error.message}"
        return Outcome(JobResult(JobStatus.FAILED, message, error=error.to_dict()), label="refused")
    result = outcome_result(applied)
    label = "succeeded" if result.status == JobStatus.SUCCEEDED else "failed"
    return Outcome(result, label=label)


def _lease_new_devices(
    service: Service, node: LocalNode, ticket: Ticket, still_waiting: Callable[[str], bool]
) -> dict[str, Lease]:
    """Lease each new device to its request (under the GPU lock, so nobody takes it first)."""
    devices = [d for view in node.inventory([ticket.gpu_index]).gpus for d in view.devices]
    leases: dict[str, Lease] = {}
    for grant in ticket.reshape.grants:
        if grant.request_id not in ticket.owners or not still_waiting(grant.request_id):
            continue  # the request left: its device stays free for anyone
        device = next(
            (
                d
                for d in devices
                if d.gi_profile == grant.gi_profile and d.placement == grant.placement
            ),
            None,
        )
        if device is None:
            where = f"{grant.gi_profile} at {grant.placement}"
            log.error("reshape of GPU %d: no %s after the apply", grant.gpu_index, where)
            continue
        owner, ttl_seconds = ticket.owners[grant.request_id]
        try:
            wanted = LeaseRequest(uuid=device.uuid, ttl_seconds=ttl_seconds, job=owner.job)
            leases[grant.request_id] = service.leases.grant(wanted, owner)
        except MigctlError as error:
            log.warning(
                "reshape of GPU %d: cannot lease %s: %s", grant.gpu_index, device.uuid, error
            )
    return leases


def _described(ticket: Ticket, outcome: Outcome) -> JobResult:
    reshape = ticket.reshape
    destroyed = ", ".join(map(str, reshape.destroyed_gi_ids)) or "none"
    created = "; ".join(_created(grant, outcome.leases) for grant in reshape.grants)
    message = f"reshaped GPU {reshape.gpu_index}: destroyed idle GI {destroyed}; created {created}"
    result = dict(outcome.result.result or {})
    result["leases"] = {rid: lease.lease_id for rid, lease in sorted(outcome.leases.items())}
    return JobResult(JobStatus.SUCCEEDED, message, result=result)


def _created(grant: NewDeviceGrant, leases: Mapping[str, Lease]) -> str:
    lease = leases.get(grant.request_id)
    held = "not leased: the request left" if lease is None else f"lease {lease.lease_id}"
    return f"{grant.gi_profile} at {grant.placement} for request {grant.request_id} ({held})"


def _audit(service: Service, ticket: Ticket, job: Job, outcome: Outcome) -> None:
    ok = outcome.result.status == JobStatus.SUCCEEDED
    detail = {
        "job_id": job.job_id,
        "result": outcome.label,
        "message": outcome.result.message,
        "leases": {rid: lease.lease_id for rid, lease in sorted(outcome.leases.items())},
        **ticket.job_request(),
    }
    service.audit.record(
        actor=DAEMON_ACTOR,
        role="admin",
        via="daemon",
        method="REPARTITION",
        path="-",
        action=JOB_KIND,
        target=f"GPU {ticket.gpu_index}",
        status=200 if ok else (409 if outcome.label == "refused" else 500),
        detail=detail,
    )
