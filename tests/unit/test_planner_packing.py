"""pack / compare_methods: legal layouts that meet the demand; exact <= heuristic; bounds."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InvalidInputError
from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel
from migctl.planner import Demand, PackResult, Requirement, compare_methods, pack
from migctl.planner.placement import place
from migctl.planner.profiles import plain_profiles
from tests.unit.planner_oracles import catalog, legal, models

CATALOG = catalog()
H100 = CATALOG.get("h100-80gb-hbm3")
A100_40 = CATALOG.get("a100-sxm4-40gb")
A100_80 = CATALOG.get("a100-sxm4-80gb")
MODELS = models()


def check_result(gpus: Sequence[GpuModel], demands: Sequence[Demand], result: PackResult) -> None:
    """Every GPU layout is legal, serves acceptable profiles, and the counts add up."""
    served: Counter[int] = Counter()
    seen: set[int] = set()
    for layout in result.layouts:
        model = gpus[layout.gpu_index]
        assert layout.gpu_index not in seen and layout.model_key == model.key
        seen.add(layout.gpu_index)
        occupants = []
        for instance in layout.instances:
            profile = model.gi_profile(instance.profile)
            assert profile is not None
            assert profile in demands[instance.demand].candidates(model)
            occupants.append(Occupant(profile, instance.placement))
            served[instance.demand] += 1
        assert occupants and legal(model, occupants)
    for index, demand in enumerate(demands):
        assert served[index] + result.unmet[index] == demand.count
    assert result.objective.gpus == len(result.layouts)
    assert result.objective.unmet == sum(result.unmet)
    if result.objective.unmet == 0:  # the bound is for serving all of the demand
        assert result.lower_bound_gpus <= result.objective.gpus


@st.composite
def demands_for(draw: st.DrawFn, gpus: Sequence[GpuModel], most: int = 8) -> list[Demand]:
    names = sorted({p.name for m in gpus for p in plain_profiles(m)})
    result = []
    for _ in range(draw(st.integers(1, 4))):
        count = draw(st.integers(0, most))
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
            result.append(Demand(count, profiles=tuple(chosen)))
        elif draw(st.booleans()):
            memory = draw(st.sampled_from([4000, 9000, 12288, 20000, 30000, 40000, 50000]))
            result.append(Demand(count, requirement=Requirement(memory_mib=memory)))
        else:
            share = draw(st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.7, 1.0]))
            result.append(Demand(count, requirement=Requirement(share=share)))
    return result


@st.composite
def fleets(draw: st.DrawFn, most_gpus: int = 6) -> tuple[list[GpuModel], list[Demand]]:
    kinds = draw(
        st.lists(st.sampled_from(MODELS), min_size=1, max_size=2, unique_by=lambda m: m.key)
    )
    gpus = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=most_gpus))
    return gpus, draw(demands_for(gpus))


@settings(max_examples=40, deadline=None)
@given(fleets())
def test_exact_and_heuristic_are_legal_and_ordered(
    case: tuple[list[GpuModel], list[Demand]],
) -> None:
    gpus, demands = case
    comparison = compare_methods(gpus, demands)
    assert comparison.exact is not None and comparison.exact.optimal
    check_result(gpus, demands, comparison.exact)
    check_result(gpus, demands, comparison.heuristic)
    assert comparison.exact.objective <= comparison.heuristic.objective
    if comparison.exact.objective.unmet == 0:  # the bound counts GPUs needed for all demand
        assert comparison.lower_bound_gpus <= comparison.exact.objective.gpus


def oracle(gpus: Sequence[GpuModel], demands: Sequence[Demand]) -> tuple[int, int]:
    """Fewest (unmet, GPUs) by trying every assignment of instances to GPU or nowhere."""
    wanted = [i for i, d in enumerate(demands) for _ in range(d.count)]
    best = (len(wanted) + 1, 0)
    choices: list[list[tuple[int, GiProfile] | None]] = [
        [None, *((g, p) for g, m in enumerate(gpus) for p in demands[i].candidates(m))]
        for i in wanted
    ]
    for combo in itertools.product(*choices):
        per_gpu: dict[int, list[GiProfile]] = {}
        for choice in combo:
            if choice is not None:
                per_gpu.setdefault(choice[0], []).append(choice[1])
        if all(place(gpus[g], ps) is not None for g, ps in per_gpu.items()):
            best = min(best, (sum(c is None for c in combo), len(per_gpu)))
    return best


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_exact_matches_brute_force_on_tiny_cases(data: st.DataObject) -> None:
    gpus = data.draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2))
    demands = data.draw(demands_for(gpus, most=2))
    if sum(d.count for d in demands) > 4:
        demands = demands[:1]
    result = pack(gpus, demands, method="exact")
    assert (result.objective.unmet, result.objective.gpus) == oracle(gpus, demands)


def test_serving_layouts_on_a100_80gb_need_three_gpus() -> None:
    # 7 + 2x4 + 4 = 19 memory slices: at least 3 GPUs; 4g+3g | 3g+4x1g | 3x1g is 3.
    demands = [Demand(7, ("1g.10gb",)), Demand(2, ("3g.40gb",)), Demand(1, ("4g.40gb",))]
    result = pack([A100_80] * 10, demands, method="exact")
    check_result([A100_80] * 10, demands, result)
    assert result.optimal and result.objective.gpus == 3 and result.lower_bound_gpus == 3
    assert [layout.gpu_index for layout in result.layouts] == [0, 1, 2]


def test_three_3g_need_two_h100s_and_demand_beyond_the_fleet_is_unmet() -> None:
    assert pack([H100] * 4, [Demand(3, ("3g.40gb",))]).objective.gpus == 2
    result = pack([H100] * 2, [Demand(3, ("7g.80gb",))])
    assert result.unmet == (1,) and result.objective.gpus == 2


def test_sizes_choose_the_smallest_profile_unless_a_gpu_is_saved() -> None:
    result = pack([H100], [Demand(4, requirement=Requirement(memory_mib=12288))])
    assert [i.profile for i in result.layouts[0].instances] == ["1g.20gb"] * 4
    shares = [Demand(1, requirement=Requirement(share=s)) for s in (0.1, 0.25, 0.5)]
    used = {i.demand: i.profile for i in pack([H100] * 3, shares).layouts[0].instances}
    assert used == {0: "1g.10gb", 1: "2g.20gb", 2: "4g.40gb"}


def test_mixed_fleet_uses_only_profiles_a_model_has() -> None:
    gpus = [A100_40, H100]
    demands = [Demand(2, ("1g.5gb",)), Demand(2, ("1g.10gb",))]
    result = pack(gpus, demands)
    check_result(gpus, demands, result)
    assert result.objective.unmet == 0
    for layout in result.layouts:
        for instance in layout.instances:
            if instance.profile == "1g.5gb":
                assert layout.gpu_index == 0


def test_large_fleet_is_legal_and_bounded() -> None:
    gpus = [H100] * 2500
    demands = [
        Demand(900, requirement=Requirement(memory_mib=m)) for m in (5000, 12000, 30000, 70000)
    ]
    comparison = compare_methods(gpus, demands)
    assert comparison.exact is not None
    for result in (comparison.exact, comparison.heuristic):
        check_result(gpus, demands, result)
    assert comparison.lower_bound_gpus <= comparison.exact.objective.gpus
    assert comparison.exact.objective <= comparison.heuristic.objective
    assert comparison.gap_gpus is not None and comparison.gap_gpus >= 0


def test_results_are_deterministic_and_json() -> None:
    demands = [Demand(5, ("2g.20gb", "3g.40gb")), Demand(9, requirement=Requirement(sms=20))]
    first = pack([H100] * 6, demands).to_dict(include_timing=False)
    assert first == pack([H100] * 6, demands).to_dict(include_timing=False)
    assert json.loads(json.dumps(first))["objective"]["gpus"] >= 2
    heuristic = pack([H100] * 6, demands, method="heuristic")
    assert heuristic.method == "greedy" and not heuristic.optimal


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        pack([H100], [Demand(1, ("1g.10gb",))], method="fastest")
    with pytest.raises(InvalidInputError):
        Demand(-1, ("1g.10gb",))
    with pytest.raises(InvalidInputError):
        Demand(1)
