"""Intents: split, smallest_profile, parse_demand, fit_demand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InsufficientResourcesError, InvalidInputError
from migctl.model import GpuModel
from migctl.planner import (
    InfeasibleError,
    fit_demand,
    parse_demand,
    smallest_profile,
    split,
)
from migctl.planner.profiles import is_variant, plain_profiles
from tests.unit.planner_oracles import brute_force_fits, catalog, legal, models

CATALOG = catalog()
H100 = CATALOG.get("h100-80gb-hbm3")
A100_40 = CATALOG.get("a100-sxm4-40gb")
A30 = CATALOG.get("a30-24gb")
RTX = CATALOG.get("rtx-pro-6000-server")
MODELS = models()


def shape(model: GpuModel, n: int) -> tuple[str, int]:
    result = split(model, n)
    names = {o.profile.name for o in result}
    assert len(names) == 1 and legal(model, result)
    return names.pop(), len(result)


def test_split_h100() -> None:
    assert shape(H100, 1) == ("7g.80gb", 1)
    assert shape(H100, 2) == ("3g.40gb", 2)
    assert shape(H100, 3) == ("2g.20gb", 3)
    assert shape(H100, 4) == ("1g.20gb", 4)  # 2g.20gb allows only 3
    assert shape(H100, 7) == ("1g.10gb", 7)
    with pytest.raises(InfeasibleError) as caught:
        split(H100, 8)
    error = caught.value
    assert "at most 7 GPU instances" in error.message
    assert error.obstacles[0].kind == "max_gpu_instances"
    assert len(error.nearest[0].occupants) == 7
    assert "7x 1g.10gb" in str(error.hint)


def test_split_a30_and_rtx_pro() -> None:
    assert shape(A30, 2) == ("2g.12gb", 2)
    assert shape(A30, 4) == ("1g.6gb", 4)
    assert shape(RTX, 2) == ("2g.48gb", 2)
    assert shape(RTX, 3) == ("1g.24gb", 3)
    with pytest.raises(InfeasibleError):
        split(RTX, 5)
    with pytest.raises(InvalidInputError):
        split(H100, 0)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MODELS), st.integers(1, 8))
def test_split_takes_the_largest_profile_allowing_n(model: GpuModel, n: int) -> None:
    def allows(profile_name: str) -> bool:
        profile = model.gi_profile(profile_name)
        return (
            profile is not None
            and n <= profile.max_instances
            and brute_force_fits(model, [profile] * n)
        )

    try:
        name, count = shape(model, n)
    except InfeasibleError:
        assert not any(allows(p.name) for p in plain_profiles(model))
        return
    assert count == n and allows(name)
    chosen = model.gi_profile(name)
    assert chosen is not None and not is_variant(chosen)
    for other in plain_profiles(model):
        if other.compute_slices > chosen.compute_slices:
            assert not allows(other.name)


def test_smallest_profile_by_memory_sms_and_share() -> None:
    sized = smallest_profile(H100, memory_mib=12288)
    assert sized.profile.name == "1g.20gb"
    assert "20096 MiB >= 12288 MiB" in sized.reason and "smallest" in sized.reason
    assert smallest_profile(H100, memory_mib=30000).profile.name == "3g.40gb"
    assert smallest_profile(H100, sms=30).profile.name == "2g.20gb"
    assert smallest_profile(H100, share=0.7).profile.name == "7g.80gb"
    assert smallest_profile(H100, share=0.5).profile.name == "4g.40gb"
    assert smallest_profile(A30, memory_mib=5000).profile.name == "1g.6gb"
    assert smallest_profile(RTX, memory_mib=30000).profile.name == "2g.48gb"


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MODELS), st.integers(1, 100_000))
def test_smallest_profile_is_smallest_and_plain(model: GpuModel, memory_mib: int) -> None:
    fitting = [p for p in plain_profiles(model) if (p.memory_mib or 0) >= memory_mib]
    try:
        sized = smallest_profile(model, memory_mib=memory_mib)
    except InsufficientResourcesError:
        assert not fitting
        return
    assert sized.profile in fitting
    assert all(sized.profile.memory_slices <= p.memory_slices for p in fitting)


def test_smallest_profile_refuses_impossible_or_empty_needs() -> None:
    with pytest.raises(InsufficientResourcesError) as caught:
        smallest_profile(H100, memory_mib=100_000)
    assert "7g.80gb" in str(caught.value.hint)
    with pytest.raises(InvalidInputError):
        smallest_profile(H100)
    with pytest.raises(InvalidInputError):
        smallest_profile(H100, share=1.5)


def test_variants_only_when_asked() -> None:
    variant = smallest_profile(RTX, memory_mib=1000, include_variants=True).profile
    plain = smallest_profile(RTX, memory_mib=1000).profile
    assert not is_variant(plain) and plain.name == "1g.24gb"
    assert variant.memory_slices == plain.memory_slices


def test_parse_demand_items_and_units() -> None:
    items = parse_demand("4x12GiB, 1x35GiB,2x1g.10gb,500MiB,3 × 2GB")
    assert [(i.count, i.memory_mib, i.profile) for i in items] == [
        (4, 12 * 1024, None),
        (1, 35 * 1024, None),
        (2, None, "1g.10gb"),
        (1, 500, None),
        (3, 1908, None),  # 2e9 bytes = 1907.35 MiB, rounded up
    ]


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("4x12", 1, "has no unit"),
        ("4x12GiB,2x3parsecs", 2, "cannot read memory size"),
        ("4xbig", 1, "neither a size"),
        ("0x1GiB", 1, "at least 1"),
        ("4x12GiB,,1x1GiB", 2, "empty"),
        ("4x", 1, "missing"),
        ("", 0, "empty"),
    ],
)
def test_parse_demand_names_the_bad_item(text: str, position: int, words: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_demand(text)
    assert words in caught.value.message
    if position:
        assert f"item {position}" in caught.value.message
    assert caught.value.hint


def test_fit_demand_on_one_h100() -> None:
    fit = fit_demand([H100], "4x12GiB")
    assert fit.fits and fit.profiles_used() == {"4x12GiB": {"1g.20gb": 4}}


def test_fit_demand_uses_the_fewest_gpus() -> None:
    demand = "4x12GiB,1x35GiB,2x1g.10gb"  # 8 + 4 + 2 memory slices: two H100s
    fit = fit_demand([H100] * 8, demand)
    assert fit.fits and fit.result.objective.gpus == 2
    assert [layout.gpu_index for layout in fit.result.layouts] == [0, 1]
    assert fit.to_dict()["fits"] is True
    short = fit_demand([H100], demand)
    assert not short.fits and short.problems
    with pytest.raises(InsufficientResourcesError):
        short.require()


def test_fit_demand_explains_what_no_gpu_offers() -> None:
    fit = fit_demand([A100_40, H100], "2x1g.5gb,1x100GiB")
    assert fit.profiles_used()["2x1g.5gb"] == {"1g.5gb": 2}
    assert all(
        i.profile != "1g.5gb" or layout.gpu_index == 0
        for layout in fit.result.layouts
        for i in layout.instances
    )
    (problem,) = fit.problems
    assert "1x100GiB" in problem and "102400 MiB" in problem
    missing = fit_demand([H100], "1x1g.5gb")
    assert "no GPU here has profile 1g.5gb" in missing.problems[0]
