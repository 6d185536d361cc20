"""The fleet planner: busy instances stay, layouts are legal, output is deterministic and good.

Properties over random small fleets (Hypothesis), optimality against brute force on tiny
fleets, the worked example of the issue (a 3g.40gb beside a busy 1g.10gb), aggregation
into classes, and refusals of bad input.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.catalog import load_catalog
from migctl.errors import InvalidInputError, NotFoundError
from migctl.model import GpuModel, Placement
from migctl.planner import Requirement
from migctl.planner.fleet import Demand, FleetGpu, FleetInstance, plan_fleet
from tests.unit.fleet_oracles import brute_force, check_plan, greedy_baseline, random_gpu

CATALOG = load_catalog()
H100 = CATALOG.get("h100-80gb-hbm3")
MODELS = [H100, CATALOG.get("a100-sxm4-40gb"), CATALOG.get("a30-24gb")]
DEMANDS = [
    ("1g.10gb", "1g.5gb", "1g.6gb"),
    ("2g.20gb", "2g.10gb", "2g.12gb"),
    ("3g.40gb", "3g.20gb"),
    ("4g.40gb", "4g.20gb", "4g.24gb"),
    ("7g.80gb", "7g.40gb"),
]


def _fleet(seed: int, size: int, models: list[GpuModel]) -> list[FleetGpu]:
    rng = random.Random(seed)
    return [random_gpu(rng.choice(models), f"h{k // 2}", k % 2, rng) for k in range(size)]


def _demands(seed: int, kinds: int) -> list[Demand]:
    rng = random.Random(seed)
    demands = [Demand(rng.randrange(0, 5), rng.choice(DEMANDS)) for _ in range(kinds)]
    if rng.random() < 0.3:
        demands.append(Demand(rng.randrange(1, 4), requirement=Requirement(memory_mib=12 * 1024)))
    return demands


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 6), st.integers(1, 3))
def test_random_fleets_keep_busy_instances_and_stay_legal(seed: int, size: int, kinds: int) -> None:
    gpus = _fleet(seed, size, MODELS)
    demands = _demands(seed + 1, kinds)
    plan = plan_fleet(gpus, demands)
    check_plan(gpus, demands, plan)
    assert plan.served >= greedy_baseline(gpus, demands)
    assert plan.optimal and plan.unmet_bound == sum(plan.unmet)
    again = plan_fleet(list(reversed(gpus)), demands)
    assert again.to_dict(include_timing=False) == plan.to_dict(include_timing=False)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 8))
def test_greedy_fallback_is_also_safe(seed: int, size: int) -> None:
    gpus = _fleet(seed, size, MODELS)
    demands = _demands(seed + 1, 2)
    plan = plan_fleet(gpus, demands, method="heuristic")
    check_plan(gpus, demands, plan)
    assert plan.method == "greedy" and not plan.optimal


@pytest.mark.parametrize("seed", range(8))
def test_tiny_fleets_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    gpus = [random_gpu(rng.choice(MODELS[1:]), "h", k, rng) for k in range(2)]
    demands = [Demand(rng.randrange(1, 3), rng.choice(DEMANDS)) for _ in range(2)]
    plan = plan_fleet(gpus, demands)
    check_plan(gpus, demands, plan)
    assert (plan.served, plan.destroyed, plan.reshaped) == brute_force(gpus, demands)


def _ones(busy_starts: set[int]) -> tuple[FleetInstance, ...]:
    return tuple(
        FleetInstance("1g.10gb", Placement(s, 1), busy=s in busy_starts, gi_id=7 + s)
        for s in range(7)
    )


def test_a_3g_beside_a_busy_1g_destroys_only_the_three_idle_slices_in_its_way() -> None:
    gpus = [FleetGpu("a", 0, H100, _ones({1}))]
    plan = plan_fleet(gpus, [Demand(1, ("3g.40gb",))])
    (target,) = plan.targets
    assert [(n.profile, str(n.placement)) for n in target.created] == [("3g.40gb", "4:4")]
    assert sorted(i.placement.start for i in target.destroyed) == [4, 5, 6]
    assert (plan.served, plan.destroyed, plan.reshaped, plan.optimal) == (1, 3, 1, True)


def test_idle_instances_that_fit_serve_before_anything_is_reshaped() -> None:
    gpus = [FleetGpu("a", 0, H100, _ones(set())), FleetGpu("b", 0, H100, ())]
    plan = plan_fleet(gpus, [Demand(3, ("1g.10gb",)), Demand(1, ("7g.80gb",))])
    assert plan.reshaped == 1 and plan.destroyed == 0
    served_by_idle = [t for t in plan.targets if t.serves]
    assert len(served_by_idle) == 1 and len(served_by_idle[0].serves) == 3
    assert [n.profile for t in plan.targets for n in t.created] == ["7g.80gb"]


def test_fewer_reshaped_gpus_win_among_plans_destroying_nothing() -> None:
    gpus = [FleetGpu("a", i, H100, ()) for i in range(4)]
    plan = plan_fleet(gpus, [Demand(2, ("3g.40gb",))])
    assert plan.reshaped == 1 and plan.served == 2


def test_identical_gpus_form_one_class_whatever_their_number() -> None:
    small = plan_fleet(
        [FleetGpu("h", i, H100, _ones({0})) for i in range(10)], [Demand(4, ("3g.40gb",))]
    )
    large = plan_fleet(
        [FleetGpu(f"h{i}", 0, H100, _ones({0})) for i in range(2000)], [Demand(4, ("3g.40gb",))]
    )
    assert small.classes == large.classes == 1
    assert small.options == large.options
    assert (large.served, large.destroyed, large.reshaped) == (4, 12, 4)


@pytest.mark.timeout(10)
def test_an_absurd_demand_count_is_clipped_and_reported_unmet() -> None:
    gpus = [FleetGpu("h", 0, H100, ())]
    plan = plan_fleet(gpus, [Demand(10**12, ("1g.10gb",))])
    assert plan.served == 7
    assert plan.unmet == (10**12 - 7,)
    assert plan.unmet_bound == 10**12 - 7


def test_a_gpu_listed_twice_is_refused() -> None:
    gpu = FleetGpu("h", 0, H100, ())
    with pytest.raises(InvalidInputError, match="listed twice"):
        plan_fleet([gpu, gpu], [Demand(1, ("1g.10gb",))])


def test_an_inconsistent_inventory_is_refused_with_the_gpu_named() -> None:
    overlapping = (
        FleetInstance("3g.40gb", Placement(0, 4)),
        FleetInstance("1g.10gb", Placement(2, 1)),
    )
    with pytest.raises(InvalidInputError, match="h/GPU 3") as info:
        plan_fleet([FleetGpu("h", 3, H100, overlapping)], [Demand(1, ("1g.10gb",))])
    assert info.value.hint


def test_an_unknown_profile_or_method_is_refused() -> None:
    bad = (FleetInstance("5g.50gb", Placement(0, 4)),)
    with pytest.raises(NotFoundError):
        plan_fleet([FleetGpu("h", 0, H100, bad)], [Demand(1, ("1g.10gb",))])
    with pytest.raises(InvalidInputError, match="method"):
        plan_fleet([], [], method="fastest")


def test_gpus_without_mig_are_left_out_with_a_note() -> None:
    l40s = CATALOG.get("l40s")
    plan = plan_fleet([FleetGpu("h", 0, l40s, ())], [Demand(2, ("1g.10gb",))])
    assert plan.unmet == (2,) and plan.targets == ()
    assert any("left out" in note for note in plan.notes)
