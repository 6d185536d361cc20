"""Layout files with ``shares``: plan, apply, check, export and dry runs, through a LocalNode.

The MIG part and the soft part of one layout on the simulator: whole GPUs shared out (L40S),
MIG devices shared out (H100), shares that are held by running leases, and MIG reshapes that
take shares away with their MIG devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.errors import InsufficientResourcesError, InUseError, InvalidInputError
from migctl.leases import EndReason
from migctl.mps.control import DaemonStatus
from migctl.node.local import LocalNode
from migctl.schemas.layouts import LayoutTarget
from migctl.schemas.leases import LeaseRequest
from migctl.schemas.reports import ApplyResultOut, PlanReportOut
from tests.unit.soft_nodes import soft_node

pytestmark = pytest.mark.timeout(180)

HEADER = "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  shared:\n    gpus:\n"


def layout(entries: str) -> LayoutTarget:
    return LayoutTarget(text=HEADER + entries, config="shared", source="shared.yaml")


WHOLE = layout(
    "      - select: {index: 0}\n        mig: false\n        shares: [50, 25, 25]\n"
    "      - select: {index: [1, 2, 3]}\n        mig: false\n"
)
RESHAPED = layout(
    "      - select: {index: 0}\n        mig: false\n        shares: [50, 50]\n"
    "      - select: {index: [1, 2, 3]}\n        mig: false\n"
)
NONE = layout("      - select: all\n        mig: false\n")
MIG_SHARES = layout(
    "      - select: {index: 0}\n        mig: true\n        instances:\n"
    "          - {profile: 3g.40gb, count: 2, shares: {percent: [50, 50], memory: [8GiB, 8GiB]}}\n"
)
MIG_RESHAPE = layout(
    "      - select: {index: 0}\n        mig: true\n        instances:\n"
    "          - {profile: 7g.80gb}\n"
)


@pytest.fixture
def l40s(sim_dir: Path) -> Iterator[LocalNode]:
    with soft_node("l40s-node", sim_dir) as node:
        yield node


@pytest.fixture
def h100(sim_dir: Path) -> Iterator[LocalNode]:
    with soft_node("h100-single", sim_dir) as node:
        yield node


def test_whole_gpu_shares_plan_apply_check_export(l40s: LocalNode) -> None:
    parent = l40s.backend.gpu(0).uuid
    plan = l40s.plan(WHOLE)
    assert not plan.noop and plan.soft[0][0] == "start the MPS control daemon of GPU 0 (L40S)"
    assert sum("create share" in line for line in plan.soft[0]) == 3
    assert l40s.inventory().soft == []  # a plan changes nothing
    before = l40s.check(WHOLE)
    assert not before.matches and any("missing soft share 50%" in x for x in before.differences[0])
    outcome = l40s.apply(WHOLE)
    assert outcome.failure is None and outcome.soft_done == 4
    devices = l40s.inventory().soft
    assert [(d.percent, d.from_layout, d.lease) for d in devices] == [
        (50, True, None),
        (25, True, None),
        (25, True, None),
    ]
    assert l40s.mps.control(parent).state().status is DaemonStatus.RUNNING
    assert l40s.check(WHOLE).matches
    assert l40s.apply(WHOLE).noop  # applying it again changes nothing
    exported = l40s.export(gpus=[0])
    assert "shares: {percent: [50, 25, 25], memory: [23034, 11517, 11517]}" in exported
    assert l40s.apply(LayoutTarget(text=exported, config="exported")).noop
    assert "# soft shares not kept (mig-parted has none)" in l40s.export(format="mig-parted")
    wire = ApplyResultOut.of_outcome(outcome).outcome()
    assert wire.soft == outcome.soft and wire.soft_done == 4


def test_leasing_picks_the_smallest_free_share_of_the_layout(l40s: LocalNode) -> None:
    l40s.apply(WHOLE)
    small = l40s.acquire(LeaseRequest(share=20))
    assert small.share_percent == 25 and small.parent_uuid == l40s.backend.gpu(0).uuid
    big = l40s.acquire(LeaseRequest(share=30, parent="0"))
    assert big.share_percent == 50
    other = l40s.acquire(LeaseRequest(share=25, parent="0"))
    with pytest.raises(InsufficientResourcesError, match="shared out by a layout"):
        l40s.acquire(LeaseRequest(share=10, parent="0"))
    l40s.release(other.lease_id)  # a layout's share stays when released
    assert len(l40s.inventory().soft) == 3
    again = l40s.acquire(LeaseRequest(share=25, parent="0"))
    assert again.uuid == other.uuid
    assert l40s.mps.control(small.parent_uuid or "").state().status is DaemonStatus.RUNNING


def test_a_held_share_is_not_reshaped_without_force(l40s: LocalNode) -> None:
    l40s.apply(WHOLE)
    held = l40s.acquire(LeaseRequest(share=25, parent="0"))
    dry = l40s.apply(RESHAPED, dry_run=True)
    assert any(held.uuid in line and held.user in line for line in dry.disturbs[0])
    assert PlanReportOut.of(dry.report).value().disturbs == dry.disturbs
    with pytest.raises(InUseError, match=held.uuid) as caught:
        l40s.apply(RESHAPED)
    assert "--force" in (caught.value.hint or "")
    assert l40s.check(WHOLE).matches  # refused: nothing changed
    outcome = l40s.apply(RESHAPED, force=True)
    assert outcome.failure is None
    assert [d.percent for d in l40s.inventory().soft] == [50, 50]
    (ended,) = [x for x in l40s.leases(history=True) if x.lease_id == held.lease_id]
    assert ended.end_reason is EndReason.REVOKED
    assert l40s.check(RESHAPED).matches


def test_removing_every_share_stops_the_daemon(l40s: LocalNode) -> None:
    l40s.apply(WHOLE)
    parent = l40s.backend.gpu(0).uuid
    outcome = l40s.apply(NONE)
    assert any("stop the MPS control daemon" in line for line in outcome.soft[0])
    assert l40s.inventory().soft == []
    assert l40s.mps.control(parent).state().status is DaemonStatus.STOPPED


def test_a_leased_share_matching_the_layout_becomes_one_of_its_shares(l40s: LocalNode) -> None:
    adhoc = l40s.acquire(LeaseRequest(share=50, parent="0", memory_mib=23034))
    outcome = l40s.apply(WHOLE)
    assert outcome.failure is None
    devices = {d.uuid: d for d in l40s.inventory().soft}
    assert devices[adhoc.uuid].from_layout and devices[adhoc.uuid].lease is not None
    assert len(devices) == 3
    l40s.release(adhoc.lease_id)
    assert adhoc.uuid in {d.uuid for d in l40s.inventory().soft}  # stays: now the layout's


def test_shares_that_cannot_hold_are_refused(l40s: LocalNode) -> None:
    too_much = layout(
        "      - select: {index: 0}\n        mig: false\n"
        "        shares: {percent: [50, 50], memory: [40GiB, 40GiB]}\n"
    )
    with pytest.raises(InsufficientResourcesError, match="pinned memory limits sum"):
        l40s.apply(too_much)
    over = layout("      - select: {index: 0}\n        mig: false\n        shares: [60, 60]\n")
    with pytest.raises(InsufficientResourcesError, match="over 100%"):
        l40s.plan(over)
    assert l40s.inventory().soft == []
    on_mig = layout("      - select: {index: 0}\n        mig: true\n        shares: 2\n")
    with pytest.raises(InvalidInputError, match="need 'mig: false'"):
        l40s.plan(on_mig)


def test_mig_device_shares_follow_their_mig_devices(h100: LocalNode) -> None:
    h100.set_mode([0], enabled=True)
    plan = h100.plan(MIG_SHARES)
    assert any("each new MIG device 3g.40gb gets soft shares" in x for x in plan.soft[0])
    outcome = h100.apply(MIG_SHARES)
    assert outcome.failure is None
    devices = h100.backend.mig_devices(0)
    soft = h100.inventory().soft
    assert sorted({d.parent_uuid for d in soft}) == sorted(d.uuid for d in devices)
    assert [(d.percent, d.memory_limit_mib) for d in soft] == [(50, 8192)] * 4
    assert h100.check(MIG_SHARES).matches
    exported = h100.export(gpus=[0])
    assert "shares: {percent: [50, 50], memory: [8192, 8192]}" in exported
    assert h100.apply(LayoutTarget(text=exported, config="exported")).noop
    held = h100.acquire(LeaseRequest(share=50, parent=devices[1].uuid))
    with pytest.raises(InUseError, match="busy"):  # the MIG device is held by a soft lease
        h100.apply(MIG_RESHAPE, dry_run=True)
    dry = h100.apply(MIG_RESHAPE, dry_run=True, force=True)
    lines = dry.disturbs[0]
    assert any(f"soft lease {held.lease_id}" in x and devices[1].uuid in x for x in lines)
    assert any(held.uuid in line and "removed" in line for line in lines)
    with pytest.raises(InUseError):
        h100.apply(MIG_RESHAPE)
    assert h100.check(MIG_SHARES).matches  # refused before the MIG part: nothing changed
    h100.release(held.lease_id)
    outcome = h100.apply(MIG_RESHAPE)
    assert outcome.failure is None
    assert h100.inventory().soft == []  # the shares went with their MIG devices
    for device in devices:
        assert h100.mps.control(device.uuid).state().status is DaemonStatus.STOPPED


def test_mig_mode_does_not_take_a_shared_gpu(h100: LocalNode) -> None:
    held = h100.acquire(LeaseRequest(share=25, parent="0"))
    with pytest.raises(InUseError, match=held.uuid):
        h100.set_mode([0], enabled=True)
    assert not h100.backend.gpu(0).mig.current  # type: ignore[union-attr]
    h100.set_mode([0], enabled=True, force=True)
    (ended,) = [x for x in h100.leases(history=True) if x.lease_id == held.lease_id]
    assert ended.end_reason is EndReason.REVOKED


@pytest.mark.parametrize(
    ("shares", "words"),
    [
        ("[50, 12.5]", "not a whole percent"),
        ("[50, 0]", "between 1% and 100%"),
        ("{split: 2, percent: [50, 50]}", "either 'split' or 'percent'"),
        ("{percent: [50, 50], memory: [1GiB, 1GiB, 1GiB]}", "3 memory limits for 2 shares"),
        ("{percent: [50], sizes: 2}", "unknown key 'sizes'"),
    ],
)
def test_a_bad_shares_key_names_its_file_line_and_path(shares: str, words: str) -> None:
    from migctl.layout import parse_layouts

    text = HEADER + f"      - select: {{index: 0}}\n        mig: false\n        shares: {shares}\n"
    with pytest.raises(InvalidInputError, match=words) as caught:
        parse_layouts(text, source="shared.yaml")
    assert caught.value.message.startswith("shared.yaml:8: layouts.shared.gpus[0].shares")
