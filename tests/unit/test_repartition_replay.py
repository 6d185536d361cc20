"""The trace replayer on tiny traces whose outcome can be worked out by hand, and its metrics.

One H100 starting as a single 7g.80gb. Static (policy off) lends what exists; dynamic
re-cuts idle instances, and each reshape makes its new instance usable 10 s later.
"""

from __future__ import annotations

import math

import pytest

from migctl.model import Placement
from migctl.repartition import Policy
from migctl.repartition.replay import ReplayConfig, TraceRequest, replay
from migctl.repartition.replay_metrics import Timeline, percentile
from tests.unit.planner_oracles import catalog

H100 = catalog().get("h100-80gb-hbm3")
WHOLE = [("7g.80gb", Placement(0, 8))]
TRACE = [
    TraceRequest("r1", 0.0, 100.0, profile="7g.80gb"),
    TraceRequest("r2", 10.0, 50.0, memory_mib=8_000),  # the smallest fit is 1g.10gb
    TraceRequest("r3", 200.0, 10.0, profile="7g.80gb"),
]
STATIC = ReplayConfig("static", Policy(mode="off"), max_wait_seconds=None)
DYNAMIC = ReplayConfig(
    "dynamic",
    Policy(mode="on", min_idle_seconds=0, reserve_after_seconds=None),
    reshape_seconds=10.0,
    max_wait_seconds=None,
)


def waits(config: ReplayConfig) -> list[float | None]:
    result = replay([H100], [WHOLE], TRACE, config)
    return [o.wait_s for o in result.outcomes]


def test_static_lends_the_7g_to_the_small_request_when_it_frees() -> None:
    result = replay([H100], [WHOLE], TRACE, STATIC)
    assert [o.wait_s for o in result.outcomes] == [0.0, 90.0, 0.0]
    assert [o.profile for o in result.outcomes] == ["7g.80gb"] * 3
    assert result.reconfigurations == 0 and result.acceptance == 1.0
    # 8 slices busy from 0 to 150 (r1 then r2), idle until the last arrival at 200
    assert result.utilisation == pytest.approx(150 / 200)


def test_dynamic_recuts_the_idle_7g_for_the_small_request_and_back() -> None:
    result = replay([H100], [WHOLE], TRACE, DYNAMIC)
    assert [o.wait_s for o in result.outcomes] == [0.0, 100.0, 10.0]
    assert [o.profile for o in result.outcomes] == ["7g.80gb", "1g.10gb", "7g.80gb"]
    assert result.reshape_times_s == (100.0, 200.0)
    assert result.destroyed_instances == 2
    # 8 slices 0-100, nothing while the 1g is created, 1 slice 110-160, then idle
    assert result.utilisation == pytest.approx((8 * 100 + 1 * 50) / (8 * 200))
    summary = result.summary()
    assert summary["mean_wait_s"] == pytest.approx(110 / 3, abs=0.01)
    assert summary["served"] == 3


def test_requests_give_up_after_the_maximum_wait() -> None:
    config = ReplayConfig("static", Policy(mode="off"), max_wait_seconds=50.0)
    result = replay([H100], [WHOLE], TRACE, config)
    r2 = result.outcomes[1]
    assert not r2.served and r2.gave_up_at == 60.0
    assert result.acceptance == pytest.approx(2 / 3)


def test_the_trace_must_name_each_request_once() -> None:
    from migctl.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        replay([H100], [WHOLE], [TRACE[0], TRACE[0]], STATIC)


def test_timeline_averages_a_step_function() -> None:
    line = Timeline(total_slices=8)
    for when, busy in [(0.0, 8), (10.0, 4), (10.0, 2), (30.0, 2), (40.0, 0)]:
        line.record(when, busy)
    assert line.times == [0.0, 10.0, 40.0]  # same instant overwritten, no-change dropped
    assert line.mean_fraction(0.0, 40.0) == pytest.approx((8 * 10 + 2 * 30) / (8 * 40))
    assert line.mean_fraction(5.0, 15.0) == pytest.approx((8 * 5 + 2 * 5) / (8 * 10))
    assert [round(share, 4) for _, share in line.binned(0.0, 20.0, 2)] == [1.0, 0.25]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.4) == 2.0
    assert math.isnan(percentile([], 0.5))
