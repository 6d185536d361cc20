"""Sizes and durations as users type them: units, rounding direction, refusals."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import UsageError
from migctl.sizes import parse_duration_s, parse_memory_mib


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


@pytest.mark.parametrize(
    ("text", "expected_mib"),
    [
        ("12G", 12 * 1024),  # G is GiB, as docker -m 12g and nvidia-smi's GiB columns read
        ("12g", 12 * 1024),
        ("12GiB", 12 * 1024),
        ("12288MiB", 12 * 1024),
        ("12288M", 12 * 1024),
        ("0.5GiB", 512),
        (".5G", 512),
        ("12GB", math.ceil(12 * 10**9 / 2**20)),  # GB is decimal, rounded up
    ],
)
def test_every_spelling_users_type(text: str, expected_mib: int) -> None:
    assert parse_memory_mib(text) == expected_mib


@pytest.mark.parametrize("text", ["0", "0GiB", "0B"])
def test_a_size_of_nothing_is_refused(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_memory_mib(text)
    assert "more than 0" in caught.value.message


@pytest.mark.parametrize("text", ["1" + "0" * 400 + "GiB", "1025TiB", "2000000GB"])
def test_sizes_no_gpu_could_have_are_refused_without_a_crash(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_memory_mib(text)
    assert "no GPU" in caught.value.message


def test_a_demand_reads_sizes_with_the_same_parser() -> None:
    from migctl.planner import parse_demand

    for spelling in ("12G", "12g", "12GiB", "12288MiB", "0.5GiB", "12GB", "2TB", "1024KiB"):
        (item,) = parse_demand(f"3x{spelling}")
        assert item.count == 3
        assert item.memory_mib == parse_memory_mib(spelling), spelling


def test_a_demand_size_needs_a_unit() -> None:
    """``4x12`` is ambiguous in a demand (12 GiB? 12 MiB?): refused, saying so."""
    from migctl.errors import InvalidInputError
    from migctl.planner import parse_demand

    with pytest.raises(InvalidInputError) as caught:
        parse_demand("4x12")
    assert "unit" in caught.value.message and "12GiB" in (caught.value.hint or "")


def test_only_one_size_parser_is_left() -> None:
    """Every memory size a user types goes through ``migctl.sizes``; no second unit table."""
    import migctl

    root = Path(migctl.__file__).parent
    tables = [
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if re.search(r"[\"']gib[\"']\s*:", path.read_text().lower())
    ]
    assert tables == ["sizes.py"]
