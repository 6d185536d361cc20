"""The ``shares`` key of layout files, and plans that change soft shares."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InsufficientResourcesError, InUseError, InvalidInputError
from migctl.layout.schema_base import StrictModel, validate
from migctl.layout.shares import ShareLayout, SharesSpec
from migctl.layout.yamlio import load_yaml
from migctl.mps.plan import (
    CurrentShare,
    ParentState,
    SoftOpKind,
    plan_soft,
)
from migctl.mps.shares import Holder, ParentDevice, SoftDevice, SoftShare

GPU0 = ParentDevice("GPU-0000", 0, 81920, 132, "H100")
MIG = ParentDevice("MIG-1111", 1, 40960, 60, "3g.40gb")


class Entry(StrictModel):
    """A stand-in for a layout file's GPU entry, with the ``shares`` field added."""

    mig: bool
    shares: SharesSpec | None = None


def entry(text: str) -> Entry:
    data, lines = load_yaml(text, "test.yaml")
    return validate(Entry, data, "test.yaml", lines)


@pytest.mark.parametrize(
    ("text", "percents", "memory"),
    [
        ("shares: 4", [25, 25, 25, 25], [None] * 4),
        ("shares: {split: 3}", [33, 33, 33], [None] * 3),
        ("shares: [50, 25, 25]", [50, 25, 25], [None] * 3),
        ("shares: ['50%', '25%', 25]", [50, 25, 25], [None] * 3),
        ("shares: {split: 2, memory: 20GiB}", [50, 50], [20480, 20480]),
        ("shares: {percent: [60, 40], memory: [30GiB, 10240]}", [60, 40], [30720, 10240]),
    ],
)
def test_shares_forms(text: str, percents: list[int], memory: list[int | None]) -> None:
    spec = entry("mig: false\n" + text).shares
    assert spec is not None
    layout = spec.share_layout()
    assert [s.percent for s in layout.shares] == percents
    assert [s.memory_mib for s in layout.shares] == memory


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shares: {split: 4, percent: [50, 50]}", "either 'split' or 'percent'"),
        ("shares: {memory: 1GiB}", "either 'split' or 'percent'"),
        ("shares: [50, 0]", "between 1% and 100%"),
        ("shares: [50, 12.5%]", "not a whole percent"),
        ("shares: {split: 0}", "must be >= 1"),
        ("shares: {split: 2, memory: [1GiB, 2GiB, 3GiB]}", "3 memory limits for 2 shares"),
        ("shares: {split: 2, memory: lots}", "cannot read memory size"),
        ("shares: {split: 2, oversubscrib: true}", "unknown key 'oversubscrib'"),
        ("shares: half", "expected a count, a list or a mapping"),
    ],
)
def test_bad_shares_name_the_key_and_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        entry("mig: false\n" + text)
    assert message in caught.value.message
    assert caught.value.message.startswith("test.yaml:2: shares")
    assert caught.value.hint


def test_share_layout_resolves_against_its_parent() -> None:
    layout = ShareLayout((SoftShare(50), SoftShare(25), SoftShare(25)))
    devices, warnings = layout.resolve(MIG)
    assert [d.memory_limit_mib for d in devices] == [20480, 10240, 10240]
    assert warnings == ()
    too_big = ShareLayout((SoftShare(50, 30720), SoftShare(50, 30720)))
    with pytest.raises(InsufficientResourcesError):
        too_big.resolve(MIG)
    over = ShareLayout((SoftShare(75, 1024), SoftShare(75, 1024)), oversubscribe=True)
    assert over.resolve(MIG)[1]


def devices(parent: ParentDevice, *sizes: tuple[int, int]) -> list[SoftDevice]:
    return [SoftDevice(parent, percent, memory) for percent, memory in sizes]


def test_plan_from_nothing_starts_the_daemon_and_creates_shares() -> None:
    plan = plan_soft([], {GPU0.uuid: devices(GPU0, (25, 20480), (75, 61440))})
    assert [op.kind for op in plan.ops] == [
        SoftOpKind.START_DAEMON,
        SoftOpKind.CREATE_SHARE,
        SoftOpKind.CREATE_SHARE,
    ]
    assert [op.percent for op in plan.ops[1:]] == [75, 25]  # larger first, deterministic
    assert plan.disruptions == ()


def test_matching_shares_are_kept_and_busy_ones_preferred() -> None:
    idle = CurrentShare("s1", 50, 40960)
    busy = CurrentShare("s2", 50, 40960, (Holder("alice", 3, (99,)),))
    state = ParentState(GPU0, True, (idle, busy))
    plan = plan_soft([state], {GPU0.uuid: devices(GPU0, (50, 40960))})
    assert plan.kept == (busy,)
    assert [(op.kind, op.share_id) for op in plan.ops] == [(SoftOpKind.REMOVE_SHARE, "s1")]
    assert plan.disruptions == ()
    plan.require_drained()  # nothing disturbed: no error


def test_a_resized_share_with_running_clients_is_a_disruption() -> None:
    busy = CurrentShare("s1", 50, 40960, (Holder("alice", 3, (99, 100)),))
    plan = plan_soft([ParentState(GPU0, True, (busy,))], {GPU0.uuid: devices(GPU0, (25, 20480))})
    kinds = [op.kind for op in plan.ops]
    assert kinds == [SoftOpKind.REMOVE_SHARE, SoftOpKind.CREATE_SHARE]
    (disruption,) = plan.disruptions
    assert disruption.share_id == "s1"
    assert "cannot change a running client's share" in disruption.reason
    with pytest.raises(InUseError) as caught:
        plan.require_drained()
    assert "alice (lease #3) PIDs 99, 100" in caught.value.message
    plan.require_drained(force=True)


def test_a_parent_without_shares_loses_its_daemon() -> None:
    state = ParentState(MIG, True, (CurrentShare("s1", 25, 1024, (Holder("bob"),)),))
    plan = plan_soft([state], {})
    assert [op.kind for op in plan.ops] == [SoftOpKind.REMOVE_SHARE, SoftOpKind.STOP_DAEMON]
    assert "removed" in plan.disruptions[0].reason


def test_a_crashed_daemon_is_started_again_for_the_kept_shares() -> None:
    share = CurrentShare("s1", 25, 1024)
    plan = plan_soft([ParentState(GPU0, False, (share,))], {GPU0.uuid: devices(GPU0, (25, 1024))})
    assert [op.kind for op in plan.ops] == [SoftOpKind.START_DAEMON]
    assert plan.kept == (share,)


SIZES = st.lists(st.sampled_from([(25, 1024), (50, 2048), (75, 4096), (10, 512)]), max_size=5)


def applied(
    plan_parent: ParentDevice, before: list[tuple[int, int]], after: list[tuple[int, int]]
) -> None:
    current = [CurrentShare(f"s{n}", p, m) for n, (p, m) in enumerate(before)]
    state = ParentState(plan_parent, bool(before), tuple(current))
    plan = plan_soft([state], {plan_parent.uuid: devices(plan_parent, *after)})
    result = [(s.percent, s.memory_limit_mib) for s in plan.kept]
    result += [
        (op.percent or 0, op.memory_limit_mib or 0)
        for op in plan.ops
        if op.kind is SoftOpKind.CREATE_SHARE
    ]
    assert sorted(result) == sorted(after)
    removed = {op.share_id for op in plan.ops if op.kind is SoftOpKind.REMOVE_SHARE}
    assert removed.isdisjoint({s.share_id for s in plan.kept})
    assert len(removed) + len(plan.kept) == len(before)
    daemon = [
        op.kind for op in plan.ops if op.kind in (SoftOpKind.START_DAEMON, SoftOpKind.STOP_DAEMON)
    ]
    assert daemon == (
        [SoftOpKind.START_DAEMON]
        if after and not before
        else [SoftOpKind.STOP_DAEMON]
        if before and not after
        else []
    )
    # planning again from the result changes nothing
    again = ParentState(
        plan_parent,
        bool(after),
        tuple(CurrentShare(f"n{i}", p, m) for i, (p, m) in enumerate(after)),
    )
    assert not plan_soft([again], {plan_parent.uuid: devices(plan_parent, *after)}).changes


@settings(max_examples=60, deadline=None)
@given(before=SIZES, after=SIZES)
def test_plans_reach_the_wanted_shares_and_are_idempotent(
    before: list[tuple[int, int]], after: list[tuple[int, int]]
) -> None:
    applied(GPU0, before, after)
