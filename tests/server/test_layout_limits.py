"""A layout sent to the daemon cannot make it do unbounded work: a 422 at once, nothing changed.

Why this exists: ``POST /v1/plan`` is open to every local user. A 120-byte body with
``"1g.10gb": 1000000000`` grew the daemon to 5 GB, a 543-byte alias bomb took 26 s and
2.77 GB, and 60,000 nested brackets answered 500 (RecursionError). Each is refused with
migctl's 422 error body before anything is expanded; the daemon keeps answering. Uses the
session daemon of ``conftest.py`` (a simulated H100). Test-only.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import layout as layout_body
from tests.server.test_bad_input import assert_error, snapshot
from tests.unit.layout_attacks import alias_bomb, deep_nesting, mig_parted_count, native_count


@pytest.fixture
def unchanged(root: httpx.Client) -> Iterator[None]:
    before = snapshot(root)
    yield
    assert snapshot(root) == before


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("layout", "words"),
    [
        (mig_parted_count("1g.10gb", 10**9), ("1000000000 x 1g.10gb", "at most 7")),
        (native_count("1g.10gb", 10**9), ("1000000000 x 1g.10gb", "at most 7")),
        (mig_parted_count("1c.7g.80gb", 10**9), ("1000000000 x 1c.7g.80gb", "at most 7")),
        (alias_bomb(7, 9), ("more than 100,000 nodes",)),
        (deep_nesting(60000), ("deeper than 32 levels",)),
    ],
    ids=["mig-parted count", "native count", "mig-parted CI count", "alias bomb", "deep nesting"],
)
@pytest.mark.parametrize("route", ["/v1/plan", "/v1/check", "/v1/apply"])
def test_layouts_too_big_to_hold_are_refused_before_expanding(
    root: httpx.Client, unchanged: None, route: str, layout: str, words: tuple[str, ...]
) -> None:
    reply = root.post(route, json=layout_body(layout, "x"))
    assert_error(reply, 422, "invalid_input", *words)
    assert root.get("/v1/health").status_code == 200
