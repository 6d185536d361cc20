"""Carry out a layout's soft shares: slots in the lease store, and each parent's MPS daemon.

Why this exists: ``apply`` makes the MIG part of a layout first (``engine.apply``); then the
soft part, on the machine as it now is (:mod:`engine.soft_plan`): under the lease store's write
lock (no share is granted meanwhile) the plan is made again from the ledger of that moment, a
removal or resize that would cut off holders is refused unless forced (forced, their leases end
as revoked: their running clients keep the share they started with until they exit, since MPS
cannot change it), shares are removed and created as slots that ``acquire --share`` then picks
from, and a soft lease made without a layout that the layout now matches becomes one of its
shares. Then each parent's MPS daemon is started (a parent with shares) or stopped (one left
with none, when no client is attached). :func:`preflight` refuses before the MIG part runs, so
that a refusal changes nothing. Also the export's view of the shares (:func:`current_shares`).
Importers: ``node``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from migctl.backends.base import Backend
from migctl.engine.soft_parents import Parent, soft_parents, start_daemon, stop_if_idle
from migctl.engine.soft_plan import SoftTargets, Wanted, soft_plan, wanted
from migctl.errors import MigctlError
from migctl.layout.shares import GpuShares, MigShares, ShareLayout
from migctl.leases import LeaseStore
from migctl.leases.soft import SoftEditor, SoftLedger
from migctl.leases.types import SoftSlot
from migctl.mps.host import MpsHost
from migctl.mps.plan import SoftOp, SoftOpKind, SoftPlan
from migctl.mps.shares import MAX_PERCENT, SoftShare
from migctl.planner import Plan

log = logging.getLogger(__name__)
REVOKED_BY = "migctl apply --force"


def preflight(
    backend: Backend,
    store: LeaseStore,
    host: MpsHost,
    targets: SoftTargets,
    plans: Mapping[int, Plan],
    *,
    force: bool,
) -> SoftPlan:
    """The soft plan as the MIG ``plans`` will leave it; InUseError naming the holders it would
    cut off, unless ``force``. Nothing changes."""
    plan = soft_plan(wanted(backend, targets, plans), store.soft_ledger(), host)
    plan.require_drained(force)
    return plan


def apply_soft(
    backend: Backend, store: LeaseStore, host: MpsHost, targets: SoftTargets, *, force: bool
) -> dict[int, list[str]]:
    """Make the covered GPUs' soft shares what ``targets`` asks; per GPU, the steps done."""
    want = wanted(backend, targets)
    with store.soft_editing() as editor:
        plan = soft_plan(want, editor.ledger, host)
        plan.require_drained(force)
        for slot in editor.ledger.slots:  # of a MIG device destroyed behind migctl's back
            if slot.gpu_index in targets.shares and slot.parent_uuid not in want.parents:
                editor.remove_slot(slot.uuid)
        for op in plan.ops:
            _edit(editor, op, want)
        _adopt_kept(editor, plan, want)
    done: dict[int, list[str]] = {}
    for op in plan.ops:
        if _daemon(op, want, store, host):
            log.info("soft shares: %s", op.describe())
        done.setdefault(op.parent.gpu_index, []).append(op.describe())
    return done


def _edit(editor: SoftEditor, op: SoftOp, want: Wanted) -> None:
    """One share step inside the store transaction (daemons come after it)."""
    if op.kind is SoftOpKind.REMOVE_SHARE and op.share_id is not None:
        holder = editor.ledger.holder_of(op.share_id)
        if holder is not None:
            editor.revoke(holder, by=REVOKED_BY)
        editor.remove_slot(op.share_id)
    elif op.kind is SoftOpKind.CREATE_SHARE:
        parent = want.parents[op.parent.uuid]
        editor.add_slot(_slot(editor.ledger.next_id(parent.uuid), parent, op))


def _slot(uuid: str, parent: Parent, op: SoftOp) -> SoftSlot:
    from migctl.mps.shares import sms_for_share

    percent, memory = op.percent or 0, op.memory_limit_mib or 0
    sms = parent.device.sm_count
    return SoftSlot(
        uuid, parent.uuid, parent.device.gpu_index, parent.gi_id, parent.ci_id, percent,
        memory, None if sms is None else sms_for_share(percent, sms),
    )  # fmt: skip


def _adopt_kept(editor: SoftEditor, plan: SoftPlan, want: Wanted) -> None:
    """A soft lease made without a layout that the layout matches becomes one of its shares."""
    slotted = {slot.uuid for slot in editor.ledger.slots}
    for kept in plan.kept:
        lease = editor.ledger.holder_of(kept.share_id)
        if kept.share_id in slotted or lease is None or lease.parent_uuid not in want.parents:
            continue
        parent = want.parents[lease.parent_uuid]
        op = SoftOp(SoftOpKind.CREATE_SHARE, parent.device, kept.percent, kept.memory_limit_mib)
        editor.add_slot(_slot(kept.share_id, parent, op))


def _daemon(op: SoftOp, want: Wanted, store: LeaseStore, host: MpsHost) -> bool:
    try:
        if op.kind is SoftOpKind.START_DAEMON:
            return start_daemon(host, want.parents[op.parent.uuid].device)
        if op.kind is SoftOpKind.STOP_DAEMON:
            return stop_if_idle(store, host, op.parent.uuid)
    except MigctlError as error:
        log.error("soft shares: could not %s: %s", op.describe(), error)
        raise
    return False


def current_shares(
    backend: Backend, ledger: SoftLedger, gpus: Sequence[int]
) -> dict[int, GpuShares]:
    """Each GPU's soft shares as a layout would ask for them (the slots a layout made):
    of the whole GPU, or of each MIG device of a pair of profiles, when those agree."""
    found: dict[int, GpuShares] = {}
    by_profile: dict[int, dict[tuple[str, str], set[ShareLayout | None]]] = {}
    for parent in soft_parents(backend, set(gpus)):
        layout = _layout_of(ledger.slots_of(parent.uuid))
        gpu = parent.device.gpu_index
        if parent.whole:
            if layout is not None:
                found[gpu] = GpuShares(whole=layout)
            continue
        key = (parent.gi_profile, parent.device.name)
        by_profile.setdefault(gpu, {}).setdefault(key, set()).add(layout)
    for gpu, profiles in by_profile.items():
        entries = []
        for (gi, ci), layouts in sorted(profiles.items()):
            if len(layouts) == 1 and None not in layouts:
                entries.append(MigShares(gi, ci, next(iter(layouts))))  # type: ignore[arg-type]
            elif layouts - {None}:
                log.warning("GPU %d: MIG devices %s carry different shares: not exported", gpu, ci)
        if entries:
            found[gpu] = GpuShares(mig=tuple(entries))
    return found


def _layout_of(slots: Sequence[SoftSlot]) -> ShareLayout | None:
    if not slots:
        return None
    ordered = sorted(slots, key=lambda s: int(s.uuid.rsplit("-", 1)[-1]))
    shares = tuple(SoftShare(s.percent, s.memory_limit_mib) for s in ordered)
    return ShareLayout(shares, oversubscribe=sum(s.percent for s in shares) > MAX_PERCENT)
