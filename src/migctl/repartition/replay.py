"""Replay a request trace against a modelled machine under a policy (discrete-event simulation).

Why this exists: whether demand-driven repartitioning pays off, and with which limits, is a
question about workloads, not about one decision. This replays a trace (arrival, duration,
size, priority) on a model of the GPUs (``replay_machine``) and calls the very ``decide`` the
daemon calls at every event: an arrival, a lease ending, a reshape finishing, a request giving
up, or a moment when something may have become possible (an idle instance reaching
``min_idle_seconds``, budget leaving the hourly window, a request reaching
``reserve_after_seconds``). Policy ``off`` is the static layout; ``on`` reshapes, and each
reshape makes its new instances usable only ``reshape_seconds`` later.

Simplifications (kept honest in the report): one default compute instance per GPU instance;
a request holds its device for exactly its duration; no failures. Aging only reorders the
queue between events. Pure; imported by ``bench/`` and tests.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InvalidInputError
from migctl.model import GpuModel, Placement
from migctl.repartition.decide import decide
from migctl.repartition.decision import Decision
from migctl.repartition.policy import RECONFIGURATION_WINDOW_S, Policy
from migctl.repartition.replay_machine import ModelGi, ModelGpu, apply_reshape, build_machine
from migctl.repartition.replay_metrics import Outcome, ReplayResult, Timeline
from migctl.repartition.requests import Request, WaitQueue
from migctl.repartition.view import MachineView

# Event kinds, in the order they are handled at one instant: frees before arrivals.
FINISH, READY, ARRIVE, GIVE_UP, WAKE = range(5)
WAKE_EPSILON_S = 1e-6


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace: when it arrives, how long it holds a device, what it needs."""

    id: str
    arrival_s: float
    duration_s: float
    profile: str | None = None
    memory_mib: int | None = None
    sms: int | None = None
    priority: int = 0
    owner: str = ""

    def request(self) -> Request:
        return Request(
            self.id, self.arrival_s, self.profile, self.memory_mib, self.sms,
            self.priority, self.owner,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    name: str
    policy: Policy
    reshape_seconds: float = 10.0  # from a reshape's start until its new devices are usable
    max_wait_seconds: float | None = 600.0  # a request gives up after waiting this long


class _Replay:
    def __init__(self, gpus: list[ModelGpu], trace: Sequence[TraceRequest], config: ReplayConfig):
        self.gpus = gpus
        self.config = config
        self.policy = config.policy
        self.trace = {t.id: t for t in trace}
        self.queue = WaitQueue()
        self.events: list[tuple[float, int, int, str]] = []
        self.counter = itertools.count()
        self.reshape_times: list[float] = []
        self.outcomes = {t.id: Outcome(t.id, t.arrival_s) for t in trace}
        self.timeline = Timeline(sum(g.total_slices for g in gpus))
        self.decide_calls = 0
        self.decide_seconds = 0.0
        self.destroyed = 0
        for item in trace:
            self.push(item.arrival_s, ARRIVE, item.id)

    def push(self, when: float, kind: int, key: str = "") -> None:
        heapq.heappush(self.events, (when, kind, next(self.counter), key))

    def run(self) -> None:
        while self.events:
            now = self.events[0][0]
            while self.events and self.events[0][0] == now:
                _, kind, _, key = heapq.heappop(self.events)
                self.handle(kind, key, now)
            if len(self.queue):
                self.apply(self.decide(now), now)
            self.timeline.record(now, sum(g.busy_slices(now) for g in self.gpus))

    def handle(self, kind: int, key: str, now: float) -> None:
        if kind == ARRIVE:
            self.queue.add(self.trace[key].request())
            if self.config.max_wait_seconds is not None:
                self.push(now + self.config.max_wait_seconds, GIVE_UP, key)
            if self.policy.enabled and self.policy.reserve_after_seconds is not None:
                self.push(now + self.policy.reserve_after_seconds + WAKE_EPSILON_S, WAKE)
        elif kind == GIVE_UP and key in self.queue:
            self.queue.remove(key)
            self.outcomes[key].gave_up_at = now
        elif kind == FINISH:
            self.finish(key, now)

    def finish(self, key: str, now: float) -> None:
        gi = self.held(key)
        gi.holder = None
        gi.idle_since = now
        if self.policy.enabled:
            self.push(now + self.policy.min_idle_seconds + WAKE_EPSILON_S, WAKE)

    def held(self, request_id: str) -> ModelGi:
        for gpu in self.gpus:
            for gi in gpu.gis.values():
                if gi.holder == request_id:
                    return gi
        raise InvalidInputError(f"replay bug: request {request_id} holds no instance")

    def decide(self, now: float) -> Decision:
        machine = MachineView(tuple(g.view(now) for g in self.gpus), tuple(self.reshape_times))
        started = time.perf_counter()
        decision = decide(machine, self.queue, self.policy, now)
        self.decide_seconds += time.perf_counter() - started
        self.decide_calls += 1
        return decision

    def apply(self, decision: Decision, now: float) -> None:
        for grant in decision.grants:
            gi = self.gpus[grant.gpu_index].gis[grant.gi_id]
            gi.holder = grant.request_id
            self.start(grant.request_id, gi, now)
        for reshape in decision.reshapes:
            gpu = self.gpus[reshape.gpu_index]
            seconds = self.config.reshape_seconds
            for gi in apply_reshape(gpu, reshape, now, seconds):
                self.start(gi.holder or "", gi, max(now, gi.ready_at))
            self.reshape_times.append(now)
            self.destroyed += len(reshape.destroyed_gi_ids)
            self.push(now + seconds, READY)
            self.push(now + RECONFIGURATION_WINDOW_S + WAKE_EPSILON_S, WAKE)

    def start(self, request_id: str, gi: ModelGi, when: float) -> None:
        self.queue.remove(request_id)
        outcome = self.outcomes[request_id]
        outcome.started_at = when
        outcome.slices = gi.placement.size
        outcome.profile = gi.profile.name
        self.push(when + self.trace[request_id].duration_s, FINISH, request_id)


def replay(
    models: Sequence[GpuModel],
    initial: Sequence[Sequence[tuple[str, Placement]]],
    trace: Sequence[TraceRequest],
    config: ReplayConfig,
) -> ReplayResult:
    """Replay ``trace`` on GPUs ``models`` starting from ``initial`` layouts under ``config``."""
    if len({t.id for t in trace}) != len(trace):
        raise InvalidInputError("trace request ids must be unique", hint="number the requests")
    run = _Replay(build_machine(models, initial), trace, config)
    run.run()
    end = max((t.arrival_s for t in trace), default=0.0)
    return ReplayResult(
        name=config.name,
        outcomes=tuple(run.outcomes[t.id] for t in trace),
        reshape_times_s=tuple(run.reshape_times),
        destroyed_instances=run.destroyed,
        timeline=run.timeline,
        window_end_s=end,
        decide_calls=run.decide_calls,
        decide_seconds=run.decide_seconds,
        max_wait_seconds=config.max_wait_seconds,
    )
