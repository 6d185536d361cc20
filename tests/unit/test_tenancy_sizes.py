"""Sizes and durations as users type them: units, rounding direction, refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import UsageError
from migctl.tenancy.sizes import parse_duration_s, parse_memory_mib


@pytest.mark.parametrize(
    ("text", "expected_mib"),
    [
        ("12GiB", 12 * 1024),
        ("12 gib", 12 * 1024),
        ("500MiB", 500),
        ("512", 512),  # a bare number is MiB
        ("1.5GiB", 1536),
        ("1TiB", 1024 * 1024),
        ("2048KiB", 2),
        ("20G", 20 * 1024),
    ],
)
def test_binary_units(text: str, expected_mib: int) -> None:
    assert parse_memory_mib(text) == expected_mib


def test_decimal_units_round_up_so_a_need_is_never_short() -> None:
    need = parse_memory_mib("10GB")
    assert need * 1024 * 1024 >= 10 * 10**9
    assert (need - 1) * 1024 * 1024 < 10 * 10**9  # and no more than one MiB above
    assert parse_memory_mib("1MB") == 1  # 1,000,000 bytes -> 1 MiB (0.95 rounded up)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=10**7))
def test_decimal_megabytes_are_the_smallest_covering_mib(megabytes: int) -> None:
    mib = parse_memory_mib(f"{megabytes}MB")
    assert mib == math.ceil(megabytes * 10**6 / 2**20)


@pytest.mark.parametrize("text", ["", "GiB", "12 parsecs", "-1GiB", "1,5GiB", "12GiBs"])
def test_unreadable_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_memory_mib(text)
    assert caught.value.hint and "12GiB" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("0.5", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 minutes", "-3", "1w"])
def test_unreadable_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration_s(text)
