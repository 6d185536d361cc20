"""YAML that would make the reader do unbounded work is refused before it is walked.

Why this exists: a 543-byte layout whose aliases nest 7 deep expands to millions of nodes
(the daemon spent 26 s and 2.77 GB on one), and ``a: [[[[...]]]]`` 60,000 deep overflowed
the Python stack (a 500 from the daemon, exit 70 from the CLI). Both are invalid input
(exit 11, naming the line), refused before anything walks the expansion. Anchors and
aliases of a sane size stay legal: mig-parted reads them (go-yaml), and a hand-written
mig-parted config may share a ``mig-devices`` block between entries. Test-only.
"""

from __future__ import annotations

import pytest

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.layout import parse_layouts, resolve, select_layout
from migctl.layout.yamlio import MAX_DEPTH, MAX_NODES
from tests.unit.layout_attacks import alias_bomb, deep_nesting


def refused(text: str) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        parse_layouts(text, source="bomb.yaml")
    error = caught.value
    assert error.exit_code == 11
    assert error.message.startswith("bomb.yaml")
    assert error.hint
    return error


@pytest.mark.timeout(10)
def test_the_reported_alias_bomb_is_refused_without_expanding_it() -> None:
    text = alias_bomb(7, 9)  # 9**7 = 4.8 million leaves from about 200 bytes
    assert len(text) < 600
    error = refused(text)
    assert f"more than {MAX_NODES:,} nodes" in error.message
    assert "alias" in error.message


def test_a_bomb_just_over_the_bound_is_refused_by_the_bound() -> None:
    error = refused(alias_bomb(5, 10))  # 111,111 nodes once expanded
    assert f"more than {MAX_NODES:,} nodes" in error.message
    assert error.context["line"] == 6  # where the expansion crosses the bound


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    error = refused("version: v1\nmig-configs: &loop\n  a: [*loop]\n")
    assert "refers to itself" in error.message
    assert error.context["line"] == 2  # the anchor's line


@pytest.mark.timeout(10)
def test_deep_nesting_is_refused_with_its_line_not_a_recursion_error() -> None:
    text = "version: v1\nmig-configs:\n" + deep_nesting(60000, "  a: ")
    error = refused(text)
    assert f"deeper than {MAX_DEPTH} levels" in error.message
    assert error.context["line"] == 3


def test_deep_nesting_through_aliases_is_refused() -> None:
    """Each anchor is shallow, but the expansion is not."""
    shallow = "[" * 20 + "x" + "]" * 20
    text = f"a: &a {shallow}\nb: &b {shallow.replace('x', '*a')}\nc: [*b]\n"
    error = refused(text)
    assert f"deeper than {MAX_DEPTH} levels" in error.message


def test_a_number_too_long_to_be_a_count_is_invalid_input() -> None:
    text = "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
    text += "      mig-devices:\n        1g.10gb: " + "9" * 5000 + "\n"
    error = refused(text)
    assert "5000 digits" in error.message
    assert error.context["line"] == 7


SHARED = """\
version: v1
mig-configs:
  shared:
    - device-filter: "0x233010DE"
      devices: [0]
      mig-enabled: true
      mig-devices: &balanced
        "1g.10gb": 2
        "2g.20gb": 1
        "3g.40gb": 1
    - device-filter: "0x233010DE"
      devices: [1]
      mig-enabled: true
      mig-devices: *balanced
  merged:
    - &entry
      devices: [0]
      mig-enabled: true
      mig-devices: {"3g.40gb": 2}
    - <<: *entry
      devices: [1]
"""


def test_sane_anchors_aliases_and_merge_keys_still_work(catalog: Catalog) -> None:
    file = parse_layouts(SHARED, source="shared.yaml")
    machine = [(0, catalog.get("h100")), (1, catalog.get("h100"))]
    shared = resolve(select_layout(file, "shared"), machine)
    assert shared[0] == shared[1]
    assert sorted(w.profile for w in shared[1].instances) == [
        "1g.10gb",
        "1g.10gb",
        "2g.20gb",
        "3g.40gb",
    ]
    merged = resolve(select_layout(file, "merged"), machine)
    assert merged[0] == merged[1]  # the merge key copied the entry; 'devices' overrode it
    assert [w.profile for w in merged[1].instances] == ["3g.40gb", "3g.40gb"]
