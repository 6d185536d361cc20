"""The daemon's repartitioning parts without a daemon process: options, priorities, the reshape
job's safety checks (on an in-process ``Service`` over a simulated H100), waiting order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migctl.cli.main import run
from migctl.engine.current import read_current
from migctl.errors import (
    InsufficientResourcesError,
    InvalidStateError,
    PermissionDeniedError,
    UsageError,
)
from migctl.leases import DeviceRequest, Lease, LeaseOwner
from migctl.planner import DesiredGi, DesiredLayout
from migctl.repartition import Policy, Request, decide
from migctl.schemas.layouts import InstancesTarget
from migctl.schemas.leases import LeaseRequest
from migctl.server.auth import Principal, Role
from migctl.server.config import ServiceConfig, repartition_policy
from migctl.server.jobs import Job, JobResult
from migctl.server.leasing import priority_of
from migctl.server.repartition_job import JOB_KIND, Outcome, Ticket, run_reshape
from migctl.server.repartition_view import (
    SharedIdleTracker,
    gi_keys,
    gpu_current,
    read_gpu,
    read_machine,
)
from migctl.server.repartitioner import Pending, recent_reshape_times, timeout_error
from migctl.server.service import Service
from migctl.server.waiters import WaitQueue
from migctl.settings import Settings

ON = Policy(mode="on", min_idle_seconds=0)
OWNER = LeaseOwner(user="alice", uid=1000, host="here")


def seven() -> DesiredLayout:
    return DesiredLayout(tuple(DesiredGi("1g.10gb") for _ in range(7)))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """An in-process daemon core (no listeners) over a simulated H100 split 7 x 1g.10gb."""
    config = ServiceConfig(socket_path=tmp_path / "d.sock", state_dir=tmp_path, repartition=ON)
    settings = Settings(
        state_dir=tmp_path, lease_db=tmp_path / "leases.db", sim_dir=tmp_path, sim="h100-single"
    )
    core = Service.open(config, settings)
    core.apply_now(InstancesTarget.of({0: seven()}), by="test", job_id=None)
    yield core
    core.close()


def leased(service: Service, uuid: str) -> Lease:
    """``uuid`` leased to alice through the daemon's node."""
    return service.node.acquire(LeaseRequest(uuid=uuid), owner=OWNER)


def reshape_ticket(service: Service) -> Ticket:
    """The reshape ``decide`` makes for one 3g.40gb request on the idle split GPU."""
    now = time.time()
    view = read_machine(
        service.gpu,
        SharedIdleTracker(),
        in_flight={},
        reshape_times_s=(),
        now=now,
    )
    decision = decide(view, [Request("w1", now, profile="3g.40gb")], ON, now)
    (reshape,) = decision.reshapes
    decided = gpu_current(view, 0)
    return Ticket(reshape, decided, gi_keys(decided), {"w1": (OWNER, None)})


def run_job(service: Service, ticket: Ticket) -> Outcome:
    """The reshape as a recorded job (as the repartitioner submits it), run in this thread."""
    outcomes: list[Outcome] = []

    def work(job: Job) -> JobResult:
        outcomes.append(run_reshape(service, ticket, job, lambda _request_id: True))
        return outcomes[0].result

    job = service.jobs.store.create(JOB_KIND, ticket.job_request(), "migctl-daemon")
    service.jobs.run(job, work)
    return outcomes[0]


def live_uuids(service: Service) -> set[str]:
    return {d.uuid for d in service.gpu.mig_devices()}


def doomed_uuids(service: Service, ticket: Ticket) -> set[str]:
    uuids = {
        d.uuid for d in service.gpu.mig_devices() if d.gi_id in ticket.reshape.destroyed_gi_ids
    }
    assert uuids, "the reshape destroys idle instances"
    return uuids


def test_a_reshape_job_leases_the_new_device_to_its_request(service: Service) -> None:
    ticket = reshape_ticket(service)
    outcome = run_job(service, ticket)
    assert outcome.label == "succeeded"
    lease = outcome.leases["w1"]
    assert (lease.user, lease.profile) == ("alice", "3g.40gb")
    assert lease.uuid in live_uuids(service)
    assert len(recent_reshape_times(service)) == 1  # counts against the hourly budget


def test_the_view_marks_busy_devices_as_the_engine_does(service: Service, tmp_path: Path) -> None:
    backend = service.node.backend
    devices = backend.mig_devices(0)
    leased(service, devices[3].uuid)
    holders = {lease.uuid: f"lease {lease.lease_id}" for lease in service.node.leases()}
    (view,) = service.node.inventory([0]).gpus
    current, uuids = read_gpu(view, set(holders))
    assert current == read_current(backend, 0, holders)
    assert [gi.in_use for gi in current.gis].count(True) == 1
    assert uuids == {(d.gi_id, d.ci_id): d.uuid for d in devices}


def test_a_device_leased_after_the_decision_makes_the_engine_refuse(service: Service) -> None:
    ticket = reshape_ticket(service)
    doomed = doomed_uuids(service, ticket)
    victim = sorted(doomed)[0]
    lease = leased(service, victim)
    before = live_uuids(service)
    outcome = run_job(service, ticket)
    assert outcome.label == "refused" and outcome.leases == {}
    assert f"busy instances: GI {lease.gi_id} " in outcome.result.message
    assert live_uuids(service) == before  # nothing destroyed, the leased device first of all


def test_a_gpu_changed_since_the_decision_is_not_touched(service: Service) -> None:
    ticket = reshape_ticket(service)
    six = DesiredLayout(seven().gis[:6])
    service.apply_now(InstancesTarget.of({0: six}), by="an admin", job_id=None)
    before = live_uuids(service)
    outcome = run_job(service, ticket)
    assert outcome.label == "refused"
    assert "changed since the decision" in outcome.result.message
    assert live_uuids(service) == before
    assert recent_reshape_times(service) == []  # refused: nothing changed, no budget used


def test_withheld_devices_are_never_leased_by_others(service: Service) -> None:
    ticket = reshape_ticket(service)
    doomed = doomed_uuids(service, ticket)
    service.leases.withheld = frozenset(doomed)
    principal = Principal("bob", 1001, Role.USER, "socket")

    async def lease_all() -> list[str]:
        granted = []
        for _ in range(7):
            try:
                lease = await service.leases.acquire(principal, LeaseRequest(profile="1g.10gb"))
            except InsufficientResourcesError:
                break
            granted.append(lease.uuid)
        return granted

    granted = asyncio.run(lease_all())
    assert len(granted) == 7 - len(doomed) and not set(granted) & doomed


def test_users_may_ask_for_priorities_up_to_ten_admins_for_more() -> None:
    user = Principal("alice", 1000, Role.USER, "socket")
    admin = Principal("root", 0, Role.ADMIN, "socket")
    assert priority_of(user, LeaseRequest()) == 0
    assert priority_of(user, LeaseRequest(priority=10)) == 10
    with pytest.raises(PermissionDeniedError, match="above 10"):
        priority_of(user, LeaseRequest(priority=11))
    assert priority_of(admin, LeaseRequest(priority=500)) == 500


def test_policy_options_map_to_the_library_policy() -> None:
    policy = repartition_policy(
        "on",
        max_reconfig_per_hour="unlimited",
        min_idle_seconds="30",
        aging_seconds="off",
        reserve_after_seconds="never",
    )
    assert policy == Policy(
        mode="on",
        max_reconfigurations_per_hour=None,
        min_idle_seconds=30,
        aging_seconds=0,
        reserve_after_seconds=None,
    )
    assert repartition_policy() == Policy()
    for bad in ({"max_reconfig_per_hour": "1.5"}, {"min_idle_seconds": "off"}):
        with pytest.raises(UsageError):
            repartition_policy("on", **bad)
    with pytest.raises(UsageError, match="not a number"):
        repartition_policy("on", aging_seconds="-3")


def test_serve_reads_its_repartition_options_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    captured: dict[str, Any] = {}

    def fake_serve(config: ServiceConfig, settings: Settings, **_options: object) -> None:
        captured["config"] = config

    monkeypatch.setattr("migctl.server.run.serve", fake_serve)
    monkeypatch.setenv("MIGCTL_REPARTITION", "on")
    monkeypatch.setenv("MIGCTL_MIN_IDLE_SECONDS", "45")
    monkeypatch.setenv("MIGCTL_METRICS_PUBLIC", "1")
    argv = ["--sim", "h100-single", "serve", "--socket", str(tmp_path / "s.sock"),
            "--state-dir", str(tmp_path), "--max-reconfig-per-hour", "3"]  # fmt: skip
    assert run(argv) == 0
    config: ServiceConfig = captured["config"]
    assert config.metrics_public
    assert config.repartition == Policy(
        mode="on", max_reconfigurations_per_hour=3, min_idle_seconds=45
    )
    monkeypatch.delenv("MIGCTL_REPARTITION")
    assert run(argv) == 0
    assert not captured["config"].repartition.enabled


def test_waiting_requests_show_in_service_order_and_time_out_with_their_reason() -> None:
    queue = WaitQueue()

    async def scenario() -> InsufficientResourcesError:
        with (
            queue.waiting(DeviceRequest(profile="1g.10gb")) as early,
            queue.waiting(DeviceRequest(profile="3g.40gb")) as late,
        ):
            early.waiting = late.waiting = True
            assert queue.queued() == [early, late]  # arrival order until ranked
            early.rank, late.rank = 1, 0
            assert queue.queued() == [late, early]
            late.reason, late.detail = "budget", "the reconfiguration budget is spent"
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            request = Request("w2", late.since, profile="3g.40gb")
            return timeout_error(Pending(request, late, OWNER, None, future), 2)

    error = asyncio.run(scenario())
    assert error.context["reason"] == "budget"
    assert "within 2 s: the reconfiguration budget is spent" in error.message
    assert error.hint is not None and "budget" in error.hint


def test_a_request_that_times_out_or_whose_client_left_leaves_the_queue(
    service: Service,
) -> None:
    repartition = service.repartition
    assert repartition is not None and service.leases.arbiter is repartition
    principal = Principal("bob", 1001, Role.USER, "socket")
    for device in service.gpu.mig_devices():  # every 1g.10gb leased: nothing can be reshaped
        leased(service, device.uuid)
    body = LeaseRequest(profile="3g.40gb", wait_seconds=0.5, priority=3)

    async def client_left() -> bool:
        return True

    async def scenario() -> tuple[Exception, Exception]:
        loop_task = asyncio.create_task(repartition.run_forever())
        try:
            with pytest.raises(InsufficientResourcesError) as timed_out:
                await service.leases.acquire(principal, body)
            assert not repartition.pending and not len(repartition.queue)
            with pytest.raises(InvalidStateError) as gone:
                await service.leases.acquire(principal, body, client_left)
            assert not repartition.pending and not service.leases.waits.queued()
            return timed_out.value, gone.value
        finally:
            loop_task.cancel()

    timed_out, gone = asyncio.run(scenario())
    assert "busy or leased instances" in str(timed_out)
    assert isinstance(timed_out, InsufficientResourcesError)
    assert timed_out.context["reason"] == "busy"
    assert "went away" in str(gone)
