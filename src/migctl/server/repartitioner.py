"""The daemon's demand-driven repartitioning: serve waiting lease requests by reshaping idle slices.

Why this module exists: with ``migctl serve --repartition on``, a lease request by size that no
free device serves joins a queue instead of polling; this loop decides for the whole queue with
``migctl.repartition.decide`` (priorities, aging, reservations, the hourly budget, the minimum
idle time, fewest destroyed instances) and carries the decision out:

* a *grant* of a free device: leased at once to that request's owner and handed to its waiter;
* a *reshape*: run as a ``repartition`` job (``repartition_job``: engine apply without force,
  under the GPU lock), then the new devices are leased to the requests they were made for.
  Until the job ends, its GPU is ``reconfiguring`` (no second reshape there) and the devices
  it will destroy are withheld from every lease.

The loop runs at every enqueue, release and expiry (``kick``) and every ``every_s`` seconds
(also to keep idle times current while nobody waits). A request leaves the queue when it is
served, when its ``wait_seconds`` pass (the error says why it still waited: ``reason`` is a
``WaitReason`` value or ``reshaping``), or when its client goes away. A device leased for a
request that has just left is released again at once (audited as revoked by the daemon).

A daemon killed during a reshape loses the waiting requests (their connections die with it);
at the next start the engine's journal completes or undoes the interrupted reshape
(``startup``) and every lease is intact; the new instance is then free for whoever asks.

Runs on the daemon's event loop (the reshape job on the job thread). Only ``migctl.server``
imports this module.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migctl.errors import InsufficientResourcesError, InvalidStateError, MigctlError
from migctl.leases import Lease, LeaseOwner
from migctl.repartition import (
    RECONFIGURATION_WINDOW_S,
    Decision,
    Grant,
    MachineView,
    Policy,
    Request,
    Reshape,
    WaitQueue,
    service_order,
)
from migctl.schemas.leases import LeaseRequest
from migctl.server.auth import DAEMON_ACTOR
from migctl.server.jobs import Job, JobResult
from migctl.server.repartition_job import JOB_KIND, OUTCOME_KEY, Outcome, Ticket, run_reshape
from migctl.server.repartition_view import (
    InFlight,
    SharedIdleTracker,
    device_uuids,
    gi_keys,
    gpu_current,
    read_machine,
)
from migctl.server.waiters import Waiter

if TYPE_CHECKING:
    from migctl.server.service import Service

log = logging.getLogger(__name__)
RESHAPING = "reshaping"
HINTS = {
    "unservable": "no GPU here has or can make such a device: relax the request",
    "budget": "the daemon's hourly reshape budget is spent: wait longer, or ask an admin",
    "min_idle": "idle instances are reshaped only after a minimum idle time: wait longer",
    "busy": "instances in use or leased hold the slices it needs: wait for leases to end",
    "reserved": "an older request holds the GPU it needs: wait longer",
    "reconfiguring": "a GPU is being reshaped: wait a little longer",
    RESHAPING: "a GPU was being reshaped for it: wait a little longer",
}


@dataclass(eq=False)
class Pending:
    """A waiting request as the repartitioner holds it."""

    request: Request
    waiter: Waiter
    owner: LeaseOwner
    ttl_seconds: float | None
    result: asyncio.Future[Lease]

    def wants(self) -> bool:
        return not self.result.done()


class Repartitioner:
    """The queue and the loop (see the module docstring); one per daemon."""

    def __init__(self, service: Service, policy: Policy, every_s: float) -> None:
        self.service = service
        self.policy = policy
        self.every_s = every_s
        self.queue = WaitQueue()  # requests decide may serve (not those in a running reshape)
        self.pending: dict[str, Pending] = {}  # every waiting request, by id
        self.in_flight: dict[int, InFlight] = {}  # GPU -> the reshape changing it
        self.tracker = SharedIdleTracker()
        self.reshape_times_s = recent_reshape_times(service)
        self.last: Decision | None = None
        self._ids = itertools.count(1)
        self._kicked: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the Arbiter protocol (leasing) --------------------------------------------------------

    def has_waiting(self) -> bool:
        return bool(self.pending)

    def kick(self) -> None:
        """Decide again soon (event loop only)."""
        if self._kicked is not None:
            self._kicked.set()

    async def wait_for(
        self,
        waiter: Waiter,
        body: LeaseRequest,
        owner: LeaseOwner,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> Lease:
        """Queue ``waiter`` and wait until a lease is handed to it, it times out, or it left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + body.wait_seconds
        result: asyncio.Future[Lease] = loop.create_future()
        pending = Pending(self._request(waiter), waiter, owner, body.ttl_seconds, result)
        self.pending[pending.request.id] = pending
        self.queue.add(pending.request)
        self.kick()
        left = False
        try:
            while not pending.result.done() and (remaining := deadline - loop.time()) > 0:
                await asyncio.wait({pending.result}, timeout=min(remaining, self.every_s))
                if not pending.result.done() and gone is not None and await gone():
                    left = True
                    break
        finally:
            self._drop(pending)
        granted = pending.result.result() if not pending.result.cancelled() else None
        if left:
            if granted is not None:  # handed over while we asked whether the client was there
                self._release_soon(granted)
            raise InvalidStateError("the client went away while waiting for a device")
        if granted is not None:
            return granted
        raise timeout_error(pending, body.wait_seconds)

    def _request(self, waiter: Waiter) -> Request:
        wanted = waiter.request
        return Request(
            id=f"w{next(self._ids)}",
            arrival_s=waiter.since,
            profile=wanted.profile,
            memory_mib=wanted.min_memory_mib or None,
            sms=wanted.min_sm_count or None,
            priority=waiter.priority,
            owner=waiter.owner.user if waiter.owner else "",
        )

    def _drop(self, pending: Pending) -> None:
        if not pending.result.done():
            pending.result.cancel()
        self.pending.pop(pending.request.id, None)
        if pending.request.id in self.queue:
            self.queue.remove(pending.request.id)

    # -- the loop ------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Decide at every kick and every ``every_s``; a failing step is logged, never fatal."""
        self._loop = asyncio.get_running_loop()
        self._kicked = asyncio.Event()
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), timeout=self.every_s)
            self._kicked.clear()
            try:
                await self.step()
            except MigctlError as error:
                log.warning("repartitioning step failed: %s", error)
            except Exception:  # the loop must outlive any bug in one step
                log.exception("repartitioning step failed")

    async def step(self) -> None:
        """Read the machine (keeping idle times current), decide, carry the decision out."""
        now = time.time()
        requests = list(self.queue)
        view, decision = await self.service.blocking.run(self._read_and_decide, requests, now)
        if decision is None:
            return
        self.last = decision
        self._note_waiting(requests, decision, now)
        for grant in decision.grants:
            await self._grant(grant)
        for reshape in decision.reshapes:
            await self._start_reshape(reshape, view, now)

    def _read_and_decide(
        self, requests: list[Request], now: float
    ) -> tuple[MachineView, Decision | None]:
        """On an I/O thread: the machine view, and the decision when someone waits."""
        from migctl.repartition import decide

        view = read_machine(
            self.service.gpu,
            self.tracker,
            in_flight=dict(self.in_flight),
            reshape_times_s=tuple(self.reshape_times_s),
            now=now,
        )
        if not requests:
            return view, None
        return view, decide(view, requests, self.policy, now)

    def _note_waiting(self, requests: list[Request], decision: Decision, now: float) -> None:
        """Rank and reason of every waiting request, for the dashboard and timeout errors."""
        order = service_order(requests, now, self.policy.aging_seconds)
        for rank, request in enumerate(order):
            pending = self.pending.get(request.id)
            if pending is not None:
                pending.waiter.rank = rank
        for waiting in decision.waiting:
            pending = self.pending.get(waiting.request_id)
            if pending is not None:
                pending.waiter.reason = waiting.reason.value
                pending.waiter.detail = waiting.detail

    # -- grants --------------------------------------------------------------------------------

    async def _grant(self, grant: Grant) -> None:
        pending = self.pending.get(grant.request_id)
        if pending is None or not pending.wants() or grant.uuid is None:
            return
        try:
            lease = await self.service.leases.lease_exact(
                grant.uuid, pending.owner, pending.ttl_seconds
            )
        except MigctlError as error:  # taken meanwhile, or its holder process ended
            log.info("grant of %s to request %s failed: %s", grant.uuid, grant.request_id, error)
            self.kick()
            return
        self._deliver(grant.request_id, lease)

    def _deliver(self, request_id: str, lease: Lease) -> None:
        """Hand ``lease`` to its request's waiter, or give it back if the request left."""
        pending = self.pending.get(request_id)
        if pending is not None and pending.wants():
            pending.result.set_result(lease)
            self._drop(pending)
            return
        self._release_soon(lease)

    def _release_soon(self, lease: Lease) -> None:
        task = asyncio.get_running_loop().create_task(self._give_back(lease))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, lease: Lease) -> None:
        log.warning("lease %d: its request left before the grant; releasing it", lease.lease_id)
        leases = self.service.leases
        try:
            ended = await leases.blocking.lease(
                leases.node.release, lease.lease_id, user=DAEMON_ACTOR, admin=True
            )
        except MigctlError as error:
            log.warning("lease %d: cannot release it: %s", lease.lease_id, error)
            return
        self.service.leases.freed(ended)

    # -- reshapes ------------------------------------------------------------------------------

    async def _start_reshape(self, reshape: Reshape, view: MachineView, now: float) -> None:
        served = [
            self.pending[g.request_id] for g in reshape.grants if g.request_id in self.pending
        ]
        if not served:
            return  # everyone it was for has left
        gpu = reshape.gpu_index
        for pending in served:
            if pending.request.id in self.queue:
                self.queue.remove(pending.request.id)
            pending.waiter.reason = RESHAPING
            pending.waiter.detail = f"GPU {gpu} is being reshaped for it"
        destroyed = frozenset(reshape.destroyed_gi_ids)
        log.info(
            "repartition: reshaping GPU %d for request(s) %s: destroying idle GI %s",
            gpu,
            ", ".join(p.request.id for p in served),
            ", ".join(map(str, sorted(destroyed))) or "none",
        )
        withheld = device_uuids(view, gpu, destroyed)
        self.in_flight[gpu] = InFlight(gpu, destroyed, withheld)
        self._update_withheld()
        self._note_reshape(now)
        decided = gpu_current(view, gpu)
        owners = {p.request.id: (p.owner, p.ttl_seconds) for p in served}
        ticket = Ticket(reshape, decided, gi_keys(decided), owners, started_s=now)

        def work(job: Job) -> JobResult:
            return self._run_job(ticket, job)

        await self.service.blocking.run(
            self.service.jobs.submit, JOB_KIND, ticket.job_request(), DAEMON_ACTOR, work
        )

    def _note_reshape(self, now: float) -> None:
        """Count a reshape against the hourly budget (and forget those out of the window)."""
        window_start = now - RECONFIGURATION_WINDOW_S
        self.reshape_times_s = [t for t in self.reshape_times_s if t > window_start]
        self.reshape_times_s.append(now)

    def _run_job(self, ticket: Ticket, job: Job) -> JobResult:
        """On the job thread: the reshape, then its end handed back to the loop."""
        outcome: Outcome | None = None
        try:
            outcome = run_reshape(self.service, ticket, job, self._still_waiting)
            return outcome.result
        finally:
            self._call_soon(self._reshape_done, ticket, outcome)

    def _still_waiting(self, request_id: str) -> bool:
        pending = self.pending.get(request_id)  # read from the job thread: a dict lookup
        return pending is not None and pending.wants()

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with suppress(RuntimeError):  # the loop closed meanwhile (daemon stopping)
            loop.call_soon_threadsafe(callback, *args)

    def _reshape_done(self, ticket: Ticket, outcome: Outcome | None) -> None:
        """On the loop: deliver the new devices, put the others back in the queue, decide."""
        gpu = ticket.gpu_index
        self.in_flight.pop(gpu, None)
        if outcome is not None and outcome.label == "refused":  # nothing changed: no budget used
            with suppress(ValueError):
                self.reshape_times_s.remove(ticket.started_s)
        self._update_withheld()
        self.tracker.forget_destroyed(ticket.decided, ticket.reshape.destroyed_gi_ids, time.time())
        leases = outcome.leases if outcome is not None else {}
        for grant in ticket.reshape.grants:
            lease = leases.get(grant.request_id)
            if lease is not None:
                self._deliver(grant.request_id, lease)
                continue
            pending = self.pending.get(grant.request_id)
            if pending is not None and pending.request.id not in self.queue:
                self.queue.add(pending.request)  # same arrival: it keeps its place
                pending.waiter.reason, pending.waiter.detail = None, None
        self.kick()

    def _update_withheld(self) -> None:
        uuids = frozenset(u for flight in self.in_flight.values() for u in flight.withheld_uuids)
        self.service.leases.withheld = uuids

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The policy, the budget left this hour, the reshapes running, the reservation."""
        now = time.time()
        window = [t for t in self.reshape_times_s if now - RECONFIGURATION_WINDOW_S < t <= now]
        reservation = self.last.reservation if self.last is not None else None
        return {
            "policy": self.policy.model_dump(),
            "reshapes_last_hour": len(window),
            "budget_left": self.policy.budget_left(tuple(window), now),
            "waiting": len(self.pending),
            "reshaping_gpus": sorted(self.in_flight),
            "reservation": None if reservation is None else reservation.to_dict(),
        }


def recent_reshape_times(service: Service) -> list[float]:
    """Start times of the reshape jobs of the past hour (the budget survives restarts); a
    refused one changed nothing and does not count."""
    since = time.time() - RECONFIGURATION_WINDOW_S
    jobs = service.jobs.store.recent(limit=10_000, kind=JOB_KIND, since=since)
    return sorted(job.created_at for job in jobs if not _refused(job.result))


def _refused(result: dict[str, Any] | None) -> bool:
    return result is not None and result.get(OUTCOME_KEY) == "refused"


def timeout_error(pending: Pending, wait_seconds: float) -> InsufficientResourcesError:
    """Why a request still waited when its ``wait_seconds`` ran out (no other user named)."""
    reason = pending.waiter.reason or "waiting"
    detail = pending.waiter.detail or "the daemon had not decided for it yet"
    return InsufficientResourcesError(
        f"no MIG device for {pending.request.describe()} within {wait_seconds:g} s: {detail}",
        hint=HINTS.get(reason, "wait longer (wait_seconds), or relax the request"),
        context={
            "request": pending.request.describe(),
            "reason": reason,
            "waited_seconds": wait_seconds,
        },
    )
