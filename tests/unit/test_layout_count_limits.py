"""Counts from outside are checked against what the GPUs hold before anything is expanded.

Why this exists: a layout's count was expanded into a list before it was checked, so
``"1g.10gb": 1000000000`` (a 120-byte request) grew the daemon to 5 GB, ``count:
1000000000`` ended in MemoryError, and ``plan --model h100 --split 1000000000`` hung.
Every count (native ``count``, mig-parted GI and CI counts, ``--split``, demand items) is
now refused at once with what one GPU (or the machine) holds. The pytest timeouts are a
generous bound for "does not expand a billion of anything", not a timing assertion.
Test-only.
"""

from __future__ import annotations

import pytest

from migctl.catalog import Catalog
from migctl.errors import InsufficientResourcesError, InvalidInputError
from migctl.layout import parse_layouts, resolve, select_layout
from migctl.planner import InfeasibleError, fit_demand, split
from tests.unit.layout_attacks import mig_parted_count, native_count

BILLION = 1_000_000_000


def refusal(text: str, catalog: Catalog, gpus: int = 1) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        layout = select_layout(parse_layouts(text, source="big.yaml"))
        resolve(layout, [(i, catalog.get("h100")) for i in range(gpus)])
    assert caught.value.exit_code == 11
    assert caught.value.hint
    return caught.value


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "words"),
    [
        (native_count("1g.10gb", BILLION), "1000000000 x 1g.10gb asked, "),
        (mig_parted_count("1g.10gb", BILLION), "1000000000 x 1g.10gb asked, "),
        (mig_parted_count("1c.7g.80gb", BILLION), "1000000000 x 1c.7g.80gb asked, "),
        (mig_parted_count("2c.3g.40gb", BILLION), "1000000000 x 2c.3g.40gb asked, "),
    ],
)
def test_a_billion_is_refused_with_what_one_gpu_holds(
    text: str, words: str, catalog: Catalog
) -> None:
    error = refusal(text, catalog, gpus=8)
    assert words in error.message
    assert "allows at most" in error.message and "per GPU" in error.message
    assert str(error.context["key_path"]).startswith(("layouts.x", "mig-configs.x"))


@pytest.mark.timeout(10)
def test_a_count_for_a_model_selector_is_refused_when_the_file_is_read(catalog: Catalog) -> None:
    text = native_count("1g.10gb", BILLION).replace("select: all", "select: {model: h100}")
    with pytest.raises(InvalidInputError) as caught:
        parse_layouts(text, source="big.yaml", catalog=catalog)  # no machine needed
    assert "at most 7 per GPU" in caught.value.message


@pytest.mark.timeout(10)
def test_many_entries_are_refused_by_their_total_before_all_are_expanded(
    catalog: Catalog,
) -> None:
    entries = "".join("          - {profile: 1g.10gb, count: 7}\n" for _ in range(2000))
    text = native_count("1g.10gb", 7).replace(
        "        instances: [{profile: 1g.10gb, count: 7}]\n", "        instances:\n" + entries
    )
    error = refusal(text, catalog)
    assert "14 GPU instances asked" in error.message and "at most 7" in error.message


@pytest.mark.timeout(10)
def test_split_checks_n_before_building_n_of_anything(catalog: Catalog) -> None:
    h100 = catalog.get("h100")
    with pytest.raises(InfeasibleError) as caught:
        split(h100, BILLION)
    assert "at most 7 GPU instances" in caught.value.message
    assert caught.value.nearest == ()  # "drop 999999993" is no help
    with pytest.raises(InfeasibleError) as eight:
        split(h100, 8)
    assert [n.dropped for n in eight.value.nearest] == [("1g.10gb",)]


@pytest.mark.timeout(10)
def test_demand_counts_are_checked_against_the_machine(catalog: Catalog) -> None:
    h100 = catalog.get("h100")
    with pytest.raises(InsufficientResourcesError) as caught:
        fit_demand([h100] * 2, "2x3g.40gb,100000000x1g.10gb")
    assert caught.value.exit_code == 5
    assert "demand item 2" in caught.value.message
    assert "100000000 instances asked, the 2 GPU(s) hold at most 14" in caught.value.message
    with pytest.raises(InvalidInputError) as digits:
        fit_demand([h100], "9" * 5000 + "x1g.10gb")
    assert "larger than any machine" in digits.value.message
    assert len(digits.value.message) < 200  # the 5000 digits are not echoed back
