"""decide() on hand-made H100 machines whose right answer follows from the MIG geometry.

H100 facts used below (reference/mig-geometry.md): 8 memory slices; 1g.10gb starts at 0-6
(never 7); 1g.20gb and 2g.20gb take 2 slices at even starts; 3g.40gb takes 4 slices at 0 or 4;
7g.80gb takes all 8. Requests by memory get the smallest profile with enough MiB.
"""

from __future__ import annotations

import json

import pytest

from migctl.geometry import gi_id_for
from migctl.model import Placement
from migctl.planner import CurrentCi, CurrentGi, CurrentGpu
from migctl.repartition import (
    Decision,
    GpuView,
    IdleTracker,
    MachineView,
    Policy,
    Request,
    WaitQueue,
    WaitReason,
    decide,
)
from tests.unit.planner_oracles import catalog

H100 = catalog().get("h100-80gb-hbm3")
NOW = 100_000.0
OLD = 10_000.0  # idle this long: may be reshaped
ON = Policy(mode="on", min_idle_seconds=300, max_reconfigurations_per_hour=None)

Spec = tuple[str, int, str | float]  # (profile, start, "busy" or seconds idle)


def gpu(index: int, specs: list[Spec]) -> GpuView:
    gis, idle = [], {}
    for profile, start, state in specs:
        size = H100.gi_profile(profile).memory_slices  # type: ignore[union-attr]
        placement = Placement(start, size)
        gi_id = gi_id_for(H100, placement)
        (ci,) = [c for c in H100.ci_profiles_for(profile) if c.is_default]
        busy = state == "busy"
        gis.append(
            CurrentGi(gi_id, profile, placement, (CurrentCi(0, ci.name, ci.placements[0], busy),))
        )
        if not busy:
            assert isinstance(state, float | int)
            idle[(gi_id, 0)] = NOW - state
    return GpuView(H100, CurrentGpu(index, tuple(gis)), idle)


def seven_1g(states: dict[int, str | float] | None = None) -> list[Spec]:
    chosen = states or {}
    return [("1g.10gb", start, chosen.get(start, OLD)) for start in range(7)]


def run(
    views: list[GpuView], requests: list[Request], policy: Policy = ON, **extra: object
) -> Decision:
    machine = MachineView(tuple(views), **extra)  # type: ignore[arg-type]
    return decide(machine, WaitQueue(requests), policy, NOW)


def destroyed_starts(decision: Decision, view: GpuView) -> list[int]:
    ids = {gi.gi_id: gi.placement.start for gi in view.current.gis}
    return sorted(ids[i] for r in decision.reshapes for i in r.destroyed_gi_ids)


def reason(decision: Decision, request_id: str) -> WaitReason:
    (waiting,) = [w for w in decision.waiting if w.request_id == request_id]
    return waiting.reason


BIG = Request("big", NOW - 10, memory_mib=30_000)  # needs 3g.40gb


def test_a_3g_replaces_the_three_1g_at_slices_4_to_6() -> None:
    view = gpu(0, seven_1g())
    decision = run([view], [BIG])
    assert destroyed_starts(decision, view) == [4, 5, 6]  # slice 7 holds no 1g
    (grant,) = decision.reshapes[0].grants
    assert (grant.gi_profile, grant.placement) == ("3g.40gb", Placement(4, 4))


def test_a_busy_slice_moves_the_3g_to_the_other_half() -> None:
    view = gpu(0, seven_1g({5: "busy"}))
    decision = run([view], [BIG])
    assert destroyed_starts(decision, view) == [0, 1, 2, 3]


def test_instances_idle_for_less_than_min_idle_stay() -> None:
    view = gpu(0, seven_1g({5: 299.0}))
    assert destroyed_starts(run([view], [BIG]), view) == [0, 1, 2, 3]
    view = gpu(0, seven_1g({5: 300.0}))
    assert destroyed_starts(run([view], [BIG]), view) == [4, 5, 6]


def test_waiting_reasons_name_what_blocks() -> None:
    young = run([gpu(0, seven_1g({1: 10.0, 5: 10.0}))], [BIG])
    assert not young.reshapes and reason(young, "big") is WaitReason.MIN_IDLE
    busy = run([gpu(0, seven_1g({1: "busy", 5: "busy"}))], [BIG])
    assert reason(busy, "big") is WaitReason.BUSY
    off = run([gpu(0, seven_1g())], [BIG], Policy(mode="off"))
    assert not off.reshapes and reason(off, "big") is WaitReason.NO_FREE_DEVICE
    huge = run([gpu(0, seven_1g())], [Request("huge", NOW, memory_mib=200_000)])
    assert reason(huge, "huge") is WaitReason.UNSERVABLE
    other = run([gpu(0, seven_1g())], [Request("a100", NOW, profile="1g.5gb")])
    assert reason(other, "a100") is WaitReason.UNSERVABLE


def test_missing_idle_times_count_as_not_idle_long_enough() -> None:
    view = gpu(0, seven_1g())
    unknown = GpuView(view.model, view.current, {})
    decision = run([unknown], [BIG])
    assert not decision.reshapes and reason(decision, "big") is WaitReason.MIN_IDLE


@pytest.mark.parametrize(("recent", "allowed"), [((100.0, 3500.0), 0), ((100.0, 3700.0), 1)])
def test_the_hourly_budget_limits_reshapes(recent: tuple[float, ...], allowed: int) -> None:
    policy = Policy(mode="on", min_idle_seconds=300, max_reconfigurations_per_hour=2)
    views = [gpu(0, seven_1g()), gpu(1, seven_1g())]
    requests = [BIG, Request("big2", NOW - 5, memory_mib=30_000)]
    decision = run(views, requests, policy, reshape_times_s=tuple(NOW - t for t in recent))
    assert len(decision.reshapes) == allowed
    # two requests fit on one GPU (both halves), so one reshape serves both when allowed
    assert len(decision.served_ids) == 2 * allowed
    if not allowed:
        assert reason(decision, "big") is WaitReason.BUDGET


def test_an_idle_oversize_device_is_recut_but_a_young_one_is_lent_as_it_is() -> None:
    small = Request("small", NOW, profile=None, memory_mib=8_000)
    recut = run([gpu(0, [("7g.80gb", 0, OLD)])], [small])
    assert not recut.grants
    (reshape,) = recut.reshapes
    assert [(g.gi_profile, g.request_id) for g in reshape.grants] == [("1g.10gb", "small")]
    lent = run([gpu(0, [("7g.80gb", 0, 5.0)])], [small])
    (grant,) = lent.grants
    assert grant.gi_profile == "7g.80gb" and grant.oversize and not lent.reshapes


def test_the_free_device_another_request_needs_is_kept_for_it() -> None:
    view = gpu(
        0,
        [
            ("1g.10gb", 0, OLD),
            ("1g.10gb", 1, OLD),
            ("1g.10gb", 2, "busy"),
            ("1g.10gb", 3, "busy"),
            ("3g.40gb", 4, OLD),
        ],
    )
    first = Request("first", NOW - 50, memory_mib=15_000)  # needs 1g.20gb: 2 slices, even start
    later = Request("later", NOW - 10, memory_mib=30_000)  # the idle 3g.40gb serves it as is
    decision = run([view], [first, later])
    (grant,) = decision.grants
    assert (grant.request_id, grant.gi_profile) == ("later", "3g.40gb")
    assert destroyed_starts(decision, view) == [0, 1]  # two 1g rather than the wanted 3g
    (new,) = decision.reshapes[0].grants
    assert (new.request_id, new.placement) == ("first", Placement(0, 2))


def test_priority_beats_age_and_aging_beats_priority() -> None:
    view = gpu(0, [("3g.40gb", 0, "busy"), ("3g.40gb", 4, 1.0)])  # one free 3g, too young to cut
    old = Request("old", NOW - 1_000, memory_mib=30_000)
    urgent = Request("urgent", NOW, memory_mib=30_000, priority=1)
    no_aging = Policy(mode="on", aging_seconds=0)
    assert [g.request_id for g in run([view], [old, urgent], no_aging).grants] == ["urgent"]
    aging = Policy(mode="on", aging_seconds=600)  # 1000 s waited: +1, tie, the older wins
    assert [g.request_id for g in run([view], [old, urgent], aging).grants] == ["old"]


def test_the_head_reserves_the_gpu_where_the_fewest_busy_instances_are_in_its_way() -> None:
    full = Request("full", NOW - 1_000, profile="7g.80gb")
    crowded = gpu(0, seven_1g({0: "busy", 3: "busy", 6: "busy"}))
    lighter = gpu(1, seven_1g({2: "busy"}))
    small = Request("small", NOW, profile="1g.10gb")
    policy = Policy(mode="on", reserve_after_seconds=600)
    decision = run([crowded, lighter], [full, small], policy)
    assert decision.reservation is not None
    assert (decision.reservation.gpu_index, decision.reservation.request_id) == (1, "full")
    assert reason(decision, "full") is WaitReason.BUSY
    (grant,) = decision.grants  # the small one goes to GPU 0 although GPU 1 has more free
    assert (grant.request_id, grant.gpu_index) == ("small", 0)
    alone = run([lighter], [full, small], policy)
    assert not alone.grants and reason(alone, "small") is WaitReason.RESERVED
    patient = run([lighter], [full, small], Policy(mode="on", reserve_after_seconds=2_000))
    assert patient.reservation is None and [g.request_id for g in patient.grants] == ["small"]


def test_a_gpu_being_reshaped_lends_devices_but_is_not_reshaped_again() -> None:
    view = gpu(0, seven_1g())
    busy = GpuView(view.model, view.current, view.idle_since, reconfiguring=True)
    decision = run([busy], [BIG, Request("one", NOW, profile="1g.10gb")])
    assert not decision.reshapes and [g.request_id for g in decision.grants] == ["one"]
    assert reason(decision, "big") is WaitReason.RECONFIGURING


def test_the_decision_is_json_with_the_daemon_layout_shape() -> None:
    decision = run([gpu(0, seven_1g())], [BIG])
    data = json.loads(json.dumps(decision.to_dict()))
    layout = data["reshapes"][0]["layout"]
    assert layout["mig_enabled"] is True
    assert {"profile": "3g.40gb", "placement": "4:4", "cis": None} in layout["gis"]
    assert len(layout["gis"]) == 5  # four 1g kept, one 3g new
    assert data["budget_left"] is None and data["waiting"] == []


def test_idle_tracker_counts_from_the_first_idle_observation() -> None:
    tracker = IdleTracker()
    placement = Placement(0, 1)
    ci = CurrentCi(0, "1g.10gb", placement)
    idle = CurrentGpu(0, (CurrentGi(7, "1g.10gb", placement, (ci,)),))
    busy = CurrentGpu(
        0, (CurrentGi(7, "1g.10gb", placement, (CurrentCi(0, "1g.10gb", placement, True),)),)
    )
    assert tracker.observe(idle, 10.0) == {(7, 0): 10.0}
    assert tracker.observe(idle, 20.0) == {(7, 0): 10.0}
    assert tracker.observe(busy, 30.0) == {}
    assert tracker.observe(idle, 40.0) == {(7, 0): 40.0}
    tracker.forget([0])
    assert tracker.observe(idle, 50.0) == {(7, 0): 50.0}
    assert tracker.observe(CurrentGpu(0, ()), 60.0) == {}
