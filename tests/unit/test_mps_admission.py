"""Admission of soft shares: memory is hard, SMs past 100% only when asked, one user per server."""

from __future__ import annotations

import pytest

from migctl.errors import InsufficientResourcesError, InUseError
from migctl.mps.admission import ActiveShare, AdmissionPolicy, admit, check_share_set
from migctl.mps.shares import Holder, ParentDevice, SoftShare

GPU = ParentDevice("GPU-1111", 0, 81920, 132, "H100")
OTHER = ParentDevice("GPU-2222", 1, 81920, 132, "H100")


def held(
    percent: int, memory_mib: int, user: str = "alice", parent: str = "GPU-1111"
) -> ActiveShare:
    return ActiveShare(parent, percent, memory_mib, Holder(user, lease_id=7, pids=(4321,)))


def test_a_share_that_fits_is_admitted_with_its_memory_settled() -> None:
    admission = admit(GPU, SoftShare(25), "alice", [held(50, 40960)])
    assert admission.device.percent == 25
    assert admission.device.memory_limit_mib == 20480
    assert admission.warnings == ()
    assert admission.takes_turns_with == ()


def test_pinned_memory_is_hard_summed_over_the_parent() -> None:
    existing = [held(25, 40960), held(25, 30720)]
    with pytest.raises(InsufficientResourcesError) as caught:
        admit(GPU, SoftShare(10, 12288), "alice", existing)
    assert "71680 MiB already pinned" in caught.value.message
    assert caught.value.context["free_mib"] == 10240
    # oversubscribing SMs does not oversubscribe memory
    with pytest.raises(InsufficientResourcesError):
        admit(GPU, SoftShare(10, 12288), "alice", existing, AdmissionPolicy(oversubscribe=True))
    # exactly what is left fits
    assert admit(GPU, SoftShare(10, 10240), "alice", existing).device.memory_limit_mib == 10240


def test_shares_on_other_parents_do_not_count() -> None:
    existing = [held(100, 81920, parent="GPU-2222", user="bob")]
    assert admit(GPU, SoftShare(100), "alice", existing).warnings == ()


def test_sm_shares_past_100_percent_need_oversubscribe() -> None:
    existing = [held(50, 8192), held(25, 8192)]
    with pytest.raises(InsufficientResourcesError) as caught:
        admit(GPU, SoftShare(50, 8192), "alice", existing)
    assert "125%" in caught.value.message
    assert "at most 25%" in (caught.value.hint or "")
    assert "--oversubscribe" in (caught.value.hint or "")
    admission = admit(
        GPU, SoftShare(50, 8192), "alice", existing, AdmissionPolicy(oversubscribe=True)
    )
    assert any("oversubscribed" in w for w in admission.warnings)


def test_a_second_user_is_refused_naming_who_holds_the_parent() -> None:
    with pytest.raises(InUseError) as caught:
        admit(GPU, SoftShare(25), "bob", [held(25, 8192, user="alice")])
    assert "alice" in caught.value.message
    assert "one Unix user at a time" in caught.value.message
    assert "--allow-other-user" in (caught.value.hint or "")
    assert caught.value.context["holders"] == ["alice"]
    assert caught.value.exit_code == 6


def test_a_second_user_allowed_explicitly_is_warned_they_take_turns() -> None:
    policy = AdmissionPolicy(allow_other_user=True)
    admission = admit(GPU, SoftShare(25), "bob", [held(25, 8192, user="alice")], policy)
    assert admission.takes_turns_with == ("alice",)
    (warning,) = admission.warnings
    assert "take turns" in warning and "alice" in warning and "bob" in warning


def test_check_share_set_reports_the_sum_of_limits() -> None:
    devices, warnings = check_share_set(
        GPU, [SoftShare(50), SoftShare(25), SoftShare(25)], AdmissionPolicy()
    )
    assert [d.memory_limit_mib for d in devices] == [40960, 20480, 20480]
    assert warnings == ()
    with pytest.raises(InsufficientResourcesError) as caught:
        check_share_set(GPU, [SoftShare(50, 65536), SoftShare(50)], AdmissionPolicy())
    assert "106496 MiB (65536 + 40960)" in caught.value.message
    with pytest.raises(InsufficientResourcesError):
        check_share_set(GPU, [SoftShare(60), SoftShare(60)], AdmissionPolicy())
    _, warned = check_share_set(
        GPU, [SoftShare(60, 1024), SoftShare(60, 1024)], AdmissionPolicy(oversubscribe=True)
    )
    assert warned
