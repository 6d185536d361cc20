"""plan_gpu: exact one-GPU feasibility, with explanations and nearest layouts that fit."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InsufficientResourcesError, NotFoundError
from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner import InfeasibleError, plan_gpu
from tests.unit.planner_oracles import brute_force_fits, catalog, legal, models, names

CATALOG = catalog()
H100 = CATALOG.get("h100-80gb-hbm3")
A100 = CATALOG.get("a100-sxm4-40gb")
A30 = CATALOG.get("a30-24gb")
RTX = CATALOG.get("rtx-pro-6000-server")
MODELS = models()


@st.composite
def wishes(draw: st.DrawFn, most: int = 4) -> tuple[GpuModel, list[GiProfile]]:
    model = draw(st.sampled_from(MODELS))
    wanted = draw(st.lists(st.sampled_from(model.gi_profiles), min_size=1, max_size=most))
    return model, wanted


@settings(max_examples=120, deadline=None)
@given(wishes())
def test_plan_gpu_is_exact_and_legal(case: tuple[GpuModel, list[GiProfile]]) -> None:
    model, wanted = case
    possible = brute_force_fits(model, wanted)
    try:
        result = plan_gpu(model, wanted)
    except InfeasibleError as error:
        assert not possible, "plan_gpu refused a layout that brute force can place"
        assert error.obstacles
        for layout in error.nearest:
            assert legal(model, layout.occupants)
            allowed = names(wanted) + Counter(new for _, new in layout.replaced)
            assert names(layout.occupants) <= allowed
        return
    assert possible
    assert legal(model, result)
    assert names(result) == names(wanted)


@settings(max_examples=60, deadline=None)
@given(wishes(most=6))
def test_nearest_drop_layouts_drop_the_fewest(case: tuple[GpuModel, list[GiProfile]]) -> None:
    model, wanted = case
    try:
        plan_gpu(model, wanted)
    except InfeasibleError as error:
        drops = [n for n in error.nearest if not n.replaced]
        assert drops, "an infeasible wish always has a smaller layout that fits"
        fewest = min(len(n.dropped) for n in drops)
        assert all(len(n.dropped) == fewest for n in drops)
        # no layout with one instance fewer dropped fits: check every such sub-multiset
        if fewest > 1:
            for index in range(len(wanted)):
                kept = wanted[:index] + wanted[index + 1 :]
                if len(kept) == len(wanted) - fewest + 1:
                    assert not brute_force_fits(model, kept)


def test_existing_instances_are_never_moved_and_count() -> None:
    three = H100.gi_profile("3g.40gb")
    assert three is not None
    existing = [Occupant(three, Placement(0, 4))]
    result = plan_gpu(H100, ["3g.40gb"], existing)
    assert [(o.profile.name, o.placement) for o in result] == [("3g.40gb", Placement(4, 4))]
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(H100, ["4g.40gb"], existing)
    error = caught.value
    assert [o.kind for o in error.obstacles] == ["collision"]
    assert "3g.40gb at 0:4" in error.message
    assert any(n.replaced == (("4g.40gb", "3g.40gb"),) for n in error.nearest)


def test_a100_driver_order_problem_19_19_14_9_places() -> None:
    wanted = [A100.gi_profile(i) for i in (19, 19, 14, 9)]
    assert all(wanted)
    result = plan_gpu(A100, [p.name for p in wanted if p])
    assert names(result) == {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    assert legal(A100, result)


def test_too_many_instances_names_both_limits_and_nearest() -> None:
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(H100, ["1g.10gb"] * 8)
    error = caught.value
    assert isinstance(error, InsufficientResourcesError)
    kinds = {o.kind: o for o in error.obstacles}
    assert kinds["max_instances"].limit == 7 and kinds["max_instances"].needed == 8
    assert kinds["max_gpu_instances"].limit == 7
    assert error.nearest[0].dropped == ("1g.10gb",)
    assert len(error.nearest[0].occupants) == 7
    assert error.exit_code == 5


def test_memory_slices_shortage_is_reported_with_totals() -> None:
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(H100, ["7g.80gb", "1g.10gb"])
    (obstacle,) = caught.value.obstacles
    assert (obstacle.kind, obstacle.needed, obstacle.limit) == ("memory_slices", 9, 8)
    changes = [n.change for n in caught.value.nearest]
    assert "replace 7g.80gb by 4g.40gb" in changes
    assert "drop 1x 1g.10gb" in changes


def test_colliding_placements_name_the_blockers_and_suggest_smaller() -> None:
    # 8 slices are enough, but 2g.20gb may not start at 6 and 4g.40gb only at 0.
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(H100, ["4g.40gb", "2g.20gb", "2g.20gb"])
    error = caught.value
    assert [o.kind for o in error.obstacles] == ["collision"]
    assert "overlap" in error.message and "6-7" in error.message
    first = error.nearest[0]
    assert not first.dropped and len(first.replaced) == 1
    assert legal(H100, first.occupants)


def test_rtx_pro_all_media_is_exclusive() -> None:
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(RTX, ["1g.24gb+me.all", "1g.24gb"])
    assert [o.kind for o in caught.value.obstacles] == ["media_exclusive"]
    result = plan_gpu(RTX, ["1g.24gb+me.all", "1g.24gb-me", "2g.48gb-me"])
    assert legal(RTX, result)
    assert sum(o.placement.size for o in result) == 12


def test_a30_and_rtx_pro_use_their_own_slice_counts() -> None:
    assert sum(o.placement.size for o in plan_gpu(A30, ["2g.12gb", "1g.6gb", "1g.6gb"])) == 4
    with pytest.raises(InfeasibleError) as caught:
        plan_gpu(A30, ["2g.12gb", "2g.12gb", "1g.6gb"])
    assert caught.value.obstacles[0].limit == 4
    rtx = plan_gpu(RTX, ["2g.48gb", "1g.24gb", "1g.24gb"])
    assert sorted(o.placement.start for o in rtx) == [0, 6, 9]


def test_unknown_profile_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        plan_gpu(H100, ["5g.50gb"])


def test_error_is_json_serialisable_and_deterministic() -> None:
    def attempt() -> dict[str, object]:
        with pytest.raises(InfeasibleError) as caught:
            plan_gpu(H100, ["4g.40gb", "3g.40gb", "2g.20gb"])
        return caught.value.to_dict()

    first = attempt()
    assert first == attempt()
    text = json.dumps(first)
    assert "nearest" in text and first["exit_code"] == 5
