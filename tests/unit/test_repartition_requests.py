"""Requests, the wait queue's order (priority, aging, age) and the policy's hourly budget."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from migctl.errors import InvalidInputError, NotFoundError
from migctl.repartition import (
    Policy,
    Request,
    WaitQueue,
    creatable_profiles,
    effective_priority,
)
from tests.unit.planner_oracles import catalog

H100 = catalog().get("h100-80gb-hbm3")


def test_sizes_map_to_the_profiles_a_reshape_may_create() -> None:
    names = [p.name for p in creatable_profiles(H100, Request("a", 0, memory_mib=12_000))]
    # 1g.10gb has 9984 MiB: too small; variants (+me) only when named
    assert names[:2] == ["1g.20gb", "2g.20gb"] and "7g.80gb" in names
    assert "1g.10gb+me" not in names
    named = creatable_profiles(H100, Request("b", 0, profile="MIG 1g.10gb+me"))
    assert [p.name for p in named] == ["1g.10gb+me"]
    assert creatable_profiles(H100, Request("c", 0, profile="1c.3g.40gb")) == ()
    by_sms = creatable_profiles(H100, Request("d", 0, sms=61))
    assert [p.name for p in by_sms] == ["4g.40gb", "7g.80gb"]  # 3g.40gb has 60 SMs
    assert creatable_profiles(H100, Request("e", 0, profile="3g.40gb", memory_mib=50_000)) == ()


def test_bad_requests_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        Request("", 0)
    with pytest.raises(InvalidInputError):
        Request("x", 0, memory_mib=0)
    with pytest.raises(InvalidInputError):
        Request("x", float("nan"))


def test_queue_order_is_priority_then_age_and_aging_lifts_old_requests() -> None:
    old = Request("old", 0.0)
    new_high = Request("new", 900.0, priority=1)
    queue = WaitQueue([new_high, old])
    assert [r.id for r in queue.ordered(1000.0, aging_seconds=0)] == ["new", "old"]
    assert effective_priority(old, 1000.0, 500.0) == 2
    assert [r.id for r in queue.ordered(1000.0, aging_seconds=500)] == ["old", "new"]
    twin = Request("a-twin", 0.0)
    queue.add(twin)
    assert [r.id for r in queue.ordered(0.0, aging_seconds=0)][1:] == ["a-twin", "old"]


def test_queue_refuses_duplicates_and_unknown_ids() -> None:
    queue = WaitQueue([Request("x", 0)])
    with pytest.raises(InvalidInputError):
        queue.add(Request("x", 1))
    with pytest.raises(NotFoundError):
        queue.remove("y")
    assert queue.remove("x").id == "x" and len(queue) == 0


def test_budget_counts_reshapes_in_the_last_hour() -> None:
    policy = Policy(mode="on", max_reconfigurations_per_hour=3)
    assert policy.budget_left((0.0, 3000.0, 3599.0, 3600.0), 3600.0) == 0
    assert policy.budget_left((0.0, 3000.0), 3601.0) == 2  # 0.0 is an hour and a second ago
    assert Policy(max_reconfigurations_per_hour=None).budget_left((1.0,), 2.0) is None


def test_policy_refuses_bad_settings() -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate({"mode": "maybe"})
    with pytest.raises(ValidationError):
        Policy(min_idle_seconds=-1)
    with pytest.raises(ValidationError):
        Policy.model_validate({"mode": "on", "max_reconfigs": 3})
