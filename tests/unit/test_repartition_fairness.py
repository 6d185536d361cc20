"""No starvation: a whole-GPU request is served under a steady stream of small ones.

Two H100s cut into seven 1g.10gb each (14 devices) face one 1g request every 5 s, each holding
its device for 100 s: about 20 wanted at once, so small requests always wait and every freed
device is lent again at once; no instance ever stays idle for ``min_idle_seconds``. A 7g.80gb
request arrives at t=50. With reservations it gets a GPU within the bound of the fairness
argument in ``migctl.repartition.decide``; without them (or, for a low-priority request,
without aging) it waits until the stream of small requests stops.
"""

from __future__ import annotations

from migctl.model import Placement
from migctl.repartition import Policy
from migctl.repartition.policy import RECONFIGURATION_WINDOW_S
from migctl.repartition.replay import ReplayConfig, TraceRequest, replay
from migctl.repartition.replay_metrics import ReplayResult
from tests.unit.planner_oracles import catalog

H100 = catalog().get("h100-80gb-hbm3")
ALL_1G = [("1g.10gb", Placement(start, 1)) for start in range(7)]
STREAM_END_S = 3_000.0
SMALL_HOLD_S = 100.0
RESHAPE_S = 10.0
MIN_IDLE_S = 60.0
RESERVE_AFTER_S = 120.0


def trace(big_priority: int, small_priority: int) -> list[TraceRequest]:
    small = [
        TraceRequest(f"s{i}", 5.0 * i, SMALL_HOLD_S, profile="1g.10gb", priority=small_priority)
        for i in range(int(STREAM_END_S / 5))
    ]
    big = TraceRequest("big", 50.0, 100.0, profile="7g.80gb", priority=big_priority)
    return sorted([*small, big], key=lambda t: t.arrival_s)


def run(policy: Policy, big_priority: int = 0, small_priority: int = 0) -> ReplayResult:
    config = ReplayConfig("dynamic", policy, reshape_seconds=RESHAPE_S, max_wait_seconds=None)
    return replay([H100, H100], [ALL_1G, ALL_1G], trace(big_priority, small_priority), config)


def big_wait(result: ReplayResult) -> float:
    (big,) = [o for o in result.outcomes if o.request_id == "big"]
    assert big.wait_s is not None, "every request is served once the stream stops"
    return big.wait_s


def policy(reserve_after_s: float | None, aging_s: float = 0.0) -> Policy:
    return Policy(
        mode="on",
        min_idle_seconds=MIN_IDLE_S,
        reserve_after_seconds=reserve_after_s,
        aging_seconds=aging_s,
        max_reconfigurations_per_hour=4,
    )


def test_the_stream_keeps_every_device_busy() -> None:
    result = run(policy(None))
    small_waits = [o.wait_s for o in result.outcomes if o.request_id != "big" and o.wait_s]
    assert len(small_waits) > 100 and min(small_waits) > 0  # small ones queue the whole time


def test_without_reservations_the_big_request_starves_while_the_stream_lasts() -> None:
    assert 50.0 + big_wait(run(policy(None))) > STREAM_END_S


def test_with_reservations_the_big_request_is_served_in_bounded_time() -> None:
    result = run(policy(RESERVE_AFTER_S))
    # reserve, let the small leases in the way end, let them age, reshape
    assert big_wait(result) <= RESERVE_AFTER_S + SMALL_HOLD_S + MIN_IDLE_S + RESHAPE_S + 1e-3


def test_aging_lifts_a_low_priority_request_to_the_head_where_it_reserves() -> None:
    starving = run(policy(RESERVE_AFTER_S, aging_s=0.0), big_priority=0, small_priority=1)
    assert 50.0 + big_wait(starving) > STREAM_END_S
    aged = run(policy(RESERVE_AFTER_S, aging_s=100.0), big_priority=0, small_priority=1)
    assert 50.0 + big_wait(aged) < STREAM_END_S


def test_the_hourly_budget_holds_in_every_window() -> None:
    result = run(policy(RESERVE_AFTER_S, aging_s=100.0), small_priority=1)
    times = result.reshape_times_s
    assert times  # the reshapes happened
    for start in times:
        inside = [t for t in times if start <= t < start + RECONFIGURATION_WINDOW_S]
        assert len(inside) <= 4
