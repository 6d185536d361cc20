"""decide() over random machines and queues: it never breaks work and its plans execute.

Random GPUs (H100, A100, A30, RTX PRO 6000) with random instances, busy flags, idle times and
waiting requests. Each decision is checked against the rules, independently of how ``decide``
finds it: nothing busy, leased, young or of unknown idle time is destroyed; the budget holds;
grants are legal and unique; every reshape plan runs on the planner tests' in-memory GPU
(which refuses anything ``migctl.geometry`` refuses) and reaches the layout it announces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.geometry import Occupant, free_placements
from migctl.model import GpuModel
from migctl.planner import CurrentCi, CurrentGi, CurrentGpu, DestroyGi
from migctl.repartition import (
    Decision,
    GpuView,
    MachineView,
    Policy,
    Request,
    creatable_profiles,
    decide,
)
from migctl.repartition.view import free_devices
from tests.unit.planner_oracles import models
from tests.unit.test_planner_reconfigure import TinyGpu, ci_sets, wanted_layout

MODELS = models()
NOW = 10_000.0
MIN_IDLE_S = 300.0


@dataclass(frozen=True)
class Case:
    machine: MachineView
    requests: tuple[Request, ...]
    policy: Policy


@st.composite
def current_gpus(draw: st.DrawFn, model: GpuModel, index: int, tries: int) -> CurrentGpu:
    occupants: list[Occupant] = []
    gis: list[CurrentGi] = []
    for _ in range(draw(st.integers(0, tries))):
        profile = draw(st.sampled_from(model.gi_profiles))
        free = free_placements(model, profile, occupants)
        if not free:
            continue
        placement = draw(st.sampled_from(free))
        occupants.append(Occupant(profile, placement))
        cis = tuple(
            CurrentCi(i, name, where, draw(st.integers(0, 7)) == 0)
            for i, (name, where) in enumerate(draw(ci_sets(model, profile)))
        )
        gis.append(
            CurrentGi(len(gis) + 1, profile.name, placement, cis, draw(st.integers(0, 7)) == 0)
        )
    return CurrentGpu(index, tuple(gis))


@st.composite
def gpu_views(draw: st.DrawFn, index: int, tries: int) -> GpuView:
    model = draw(st.sampled_from(MODELS))
    current = draw(current_gpus(model, index, tries))
    idle: dict[tuple[int, int], float] = {}
    for gi in current.gis:
        for ci in gi.cis:
            if not ci.busy and draw(st.integers(0, 9)) > 0:  # some idle times unknown
                idle[(gi.gi_id, ci.ci_id)] = NOW - draw(
                    st.sampled_from([0.0, 299.0, 300.0, 5000.0, 5000.0, 9000.0])
                )
    return GpuView(model, current, idle, reconfiguring=draw(st.integers(0, 9)) == 0)


@st.composite
def requests(draw: st.DrawFn, index: int, names: Sequence[str]) -> Request:
    kind = draw(st.integers(0, 3))
    profile = memory = sms = None
    if kind == 0:
        profile = draw(st.sampled_from(names))
    elif kind == 1:
        memory = draw(st.sampled_from([4000, 9000, 15000, 30000, 45000, 80000, 200000]))
    elif kind == 2:
        sms = draw(st.sampled_from([10, 30, 60, 100]))
    return Request(
        f"r{index}",
        NOW - draw(st.sampled_from([0.0, 100.0, 400.0, 4000.0])),
        profile,
        memory,
        sms,
        draw(st.integers(0, 2)),
    )


@st.composite
def cases(draw: st.DrawFn, tries: int = 12) -> Case:
    gpus = tuple(draw(gpu_views(i, tries)) for i in range(draw(st.integers(1, 3))))
    names = sorted({p.name for g in gpus for p in g.model.gi_profiles})
    history = tuple(
        NOW - t for t in draw(st.lists(st.sampled_from([10.0, 1000.0, 3599.0, 3601.0]), max_size=4))
    )
    queue = tuple(draw(requests(i, names)) for i in range(draw(st.integers(0, 6))))
    policy = Policy(
        mode=draw(st.sampled_from(["on", "on", "off"])),
        max_reconfigurations_per_hour=draw(st.sampled_from([None, None, 0, 1, 2, 5])),
        min_idle_seconds=MIN_IDLE_S,
        aging_seconds=draw(st.sampled_from([0.0, 600.0])),
        reserve_after_seconds=draw(st.sampled_from([None, 0.0, 300.0])),
    )
    return Case(MachineView(gpus, history), queue, policy)


def may_destroy(view: GpuView, gi: CurrentGi) -> bool:
    """The rule, restated: idle as a whole, every device idle for at least MIN_IDLE_S."""
    if gi.busy or any(ci.busy for ci in gi.cis):
        return False
    keys = [(gi.gi_id, ci.ci_id) for ci in gi.cis] or [(gi.gi_id, -1)]
    return all(k in view.idle_since and NOW - view.idle_since[k] >= MIN_IDLE_S for k in keys)


def check_reshapes(case: Case, decision: Decision, by_id: dict[str, Request]) -> None:
    views = {g.gpu_index: g for g in case.machine.gpus}
    for reshape in decision.reshapes:
        view = views[reshape.gpu_index]
        assert not view.reconfiguring
        gis = {gi.gi_id: gi for gi in view.current.gis}
        destroyed = [op.gi_id for op in reshape.plan.ops if isinstance(op, DestroyGi)]
        assert sorted(destroyed) == list(reshape.destroyed_gi_ids)
        for gi_id in destroyed:
            assert may_destroy(view, gis[gi_id]), f"destroyed GI {gi_id} that must stay"
        tiny = TinyGpu(view.model, view.current)
        tiny.apply(reshape.plan)  # asserts every op is legal on the geometry rules
        assert not tiny.busy_destroyed
        assert tiny.layout() == wanted_layout(view.model, reshape.layout)
        for grant in reshape.grants:
            request = by_id[grant.request_id]
            assert grant.gi_profile in {p.name for p in creatable_profiles(view.model, request)}
            (after,) = [g for g in tiny.gis.values() if g.placement == grant.placement]
            assert after.profile.name == grant.gi_profile
            assert [(name, busy) for name, _, busy in after.cis.values()] == [
                (default_ci(view.model, grant.gi_profile), False)
            ], "the granted device is a fresh default CI"
            before = [gi for gi in view.current.gis if gi.placement == grant.placement]
            assert all(may_destroy(view, gi) for gi in before), "only idle GIs are re-cut"


def default_ci(model: GpuModel, gi_profile: str) -> str:
    (default,) = [c.name for c in model.ci_profiles_for(gi_profile) if c.is_default]
    return default


def check_grants(case: Case, decision: Decision, by_id: dict[str, Request]) -> None:
    views = {g.gpu_index: g for g in case.machine.gpus}
    destroyed = {(r.gpu_index, gi) for r in decision.reshapes for gi in r.destroyed_gi_ids}
    devices = set()
    for grant in decision.grants:
        view = views[grant.gpu_index]
        (device,) = [
            d for d in free_devices(view) if (d.gi_id, d.ci_id) == (grant.gi_id, grant.ci_id)
        ]
        request = by_id[grant.request_id]
        assert request.profile in (None, device.profile)
        assert request.memory_mib is None or device.memory_mib >= request.memory_mib
        assert request.sms is None or (device.sm_count or 0) >= request.sms
        assert (grant.gpu_index, grant.gi_id) not in destroyed
        devices.add((grant.gpu_index, grant.gi_id, grant.ci_id))
    assert len(devices) == len(decision.grants), "a device granted twice"


def check_reservation(decision: Decision) -> None:
    held = decision.reservation
    if held is None:
        return
    where = [(g.gpu_index, g.request_id) for g in decision.grants]
    where.extend((g.gpu_index, g.request_id) for r in decision.reshapes for g in r.grants)
    for gpu_index, request_id in where:
        assert gpu_index != held.gpu_index or request_id == held.request_id


def decided_ids(decision: Decision) -> Sequence[str]:
    return [*decision.served_ids, *(w.request_id for w in decision.waiting)]


@settings(max_examples=150, deadline=None)
@given(cases())
def test_decisions_respect_every_rule(case: Case) -> None:
    check_decision(case)


@settings(max_examples=100, deadline=None)
@given(cases(tries=30))
def test_decisions_on_crowded_gpus_respect_every_rule(case: Case) -> None:
    check_decision(case)


def check_decision(case: Case) -> None:
    decision = decide(case.machine, case.requests, case.policy, NOW)
    by_id = {r.id: r for r in case.requests}
    ids = decided_ids(decision)
    assert sorted(ids) == sorted(by_id), "every request is served once or waits once"
    if not case.policy.enabled:
        assert not decision.reshapes
    budget = case.policy.budget_left(case.machine.reshape_times_s, NOW)
    if budget is not None:
        assert len(decision.reshapes) <= budget
        assert decision.budget_left == budget - len(decision.reshapes)
    assert len({r.gpu_index for r in decision.reshapes}) == len(decision.reshapes)
    check_grants(case, decision, by_id)
    check_reshapes(case, decision, by_id)
    check_reservation(decision)
    text = json.dumps(decision.to_dict(), sort_keys=True)
    again = decide(case.machine, tuple(reversed(case.requests)), case.policy, NOW)
    assert json.dumps(again.to_dict(), sort_keys=True) == text, "deterministic"
