"""Soft devices: reading shares and memory limits, settling defaults, naming parents."""

from __future__ import annotations

import pytest

from migctl.errors import InsufficientResourcesError, NotFoundError, UsageError
from migctl.mps.shares import (
    ParentDevice,
    ParentKind,
    SoftShare,
    default_memory_mib,
    parse_memory_limit,
    parse_share,
    parse_soft_share,
    resolve_parent,
    sms_for_share,
    soft_device,
)

H100 = ParentDevice("GPU-1111", 0, 81559, 132, "H100 80GB HBM3")
MIG_3G = ParentDevice("MIG-aaaa", 1, 40192, 60, "3g.40gb")
MIG_1G = ParentDevice("MIG-bbbb", 1, 9856, 16, "1g.10gb")


@pytest.mark.parametrize(
    ("text", "percent"), [("25%", 25), ("25", 25), (" 100 % ", 100), ("1%", 1), ("50.0%", 50)]
)
def test_share_text_is_read_as_whole_percent(text: str, percent: int) -> None:
    assert parse_share(text) == percent


@pytest.mark.parametrize("text", ["0", "0%", "101%", "-5%", "12.5%", "abc", "", "25%%", "1e2"])
def test_bad_share_text_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_share(text)
    assert caught.value.hint is not None
    assert caught.value.exit_code == 2


def test_memory_limit_uses_the_project_size_reader() -> None:
    assert parse_memory_limit("12GiB") == 12 * 1024
    assert parse_memory_limit("10GB") == 9537  # decimal units, rounded up like every size
    assert parse_memory_limit("512") == 512
    for bad in ("0", "0GiB", "twelve", "12 parsecs"):
        with pytest.raises(UsageError):
            parse_memory_limit(bad)


def test_parse_soft_share_reads_both_options() -> None:
    assert parse_soft_share("25%", "12GiB") == SoftShare(25, 12288)
    assert parse_soft_share("25%") == SoftShare(25, None)


def test_default_memory_is_the_same_fraction_as_the_sm_share() -> None:
    assert default_memory_mib(H100, 25) == 81559 * 25 // 100
    device = soft_device(H100, SoftShare(25))
    assert device.memory_limit_mib == 20389
    assert device.percent == 25


def test_sms_follow_the_measured_h100_rounding() -> None:
    # measured on an H100 (132 SMs): MPS hands out whole TPCs of 2 SMs, rounded down
    shares = (10, 25, 50, 75, 90, 100)
    assert [sms_for_share(p, 132) for p in shares] == [12, 32, 66, 98, 118, 132]
    assert sms_for_share(1, 132) == 2
    assert soft_device(H100, SoftShare(25)).sm_estimate == 32
    unknown = ParentDevice("GPU-2222", 2, 1000)
    assert soft_device(unknown, SoftShare(50)).sm_estimate is None


def test_a_memory_limit_larger_than_the_parent_is_refused() -> None:
    with pytest.raises(InsufficientResourcesError) as caught:
        soft_device(MIG_1G, SoftShare(50, 12 * 1024))
    assert "9856 MiB" in caught.value.message
    assert "at most 9856 MiB" in (caught.value.hint or "")
    assert caught.value.exit_code == 5


def test_parent_kind_and_labels() -> None:
    assert H100.kind is ParentKind.GPU
    assert MIG_3G.kind is ParentKind.MIG
    assert H100.label() == "GPU 0 (H100 80GB HBM3)"
    assert "3g.40gb on GPU 1" in MIG_3G.label()
    for bad in ("0", "gpu-1", "MIG-", "nvidia0"):
        with pytest.raises(UsageError):
            ParentDevice(bad, 0, 1000)
    with pytest.raises(UsageError):
        ParentDevice("GPU-1", 0, 0)


def test_resolve_parent_by_index_or_uuid() -> None:
    parents = [H100, MIG_3G, MIG_1G]
    assert resolve_parent("0", parents) is H100
    assert resolve_parent("GPU-1111", parents) is H100
    assert resolve_parent("mig-aaaa", parents) is MIG_3G


def test_a_gpu_in_mig_mode_points_at_its_mig_devices() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_parent("1", [H100, MIG_3G, MIG_1G])
    assert "MIG mode" in caught.value.message
    assert "MIG-aaaa" in (caught.value.hint or "")
    assert "MIG-bbbb" in (caught.value.hint or "")


def test_unknown_parents_are_not_found() -> None:
    with pytest.raises(NotFoundError):
        resolve_parent("7", [H100])
    with pytest.raises(NotFoundError) as caught:
        resolve_parent("MIG-ffff", [H100])
    assert "GPU-1111" in (caught.value.hint or "")
    with pytest.raises(UsageError):
        resolve_parent("nonsense", [H100])
