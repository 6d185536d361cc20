"""Which soft device to grant: a free share a layout made, or a new share on a parent.

Why this exists: ``migctl lease acquire --share``, ``run --share`` and ``env --share`` ask for an
SM share (and optionally a memory limit, and a parent). The answer depends on every share
already granted on each parent, so :func:`choose_share` runs inside the lease store's write
transaction, on the :class:`~migctl.leases.soft.SoftLedger` of that moment, and applies the
admission rules of :mod:`migctl.mps.admission`. The rules of the choice:

* a parent that a layout gave shares (*slots*) serves only those: the smallest free slot of at
  least the asked share (and memory limit) is granted, with the slot's own size;
* any other parent gets a new share, admitted against the shares it already has (memory must
  fit, SMs past 100% only with ``oversubscribe``, another Unix user only with
  ``allow_other_user``); parents this user already shares come first (fewer MPS daemons, and
  whole devices stay whole), then by GPU index;
* a MIG device leased whole is never shared; a named parent (``--parent``) is the only one
  tried, and its refusal is the answer.

Pure: the caller passes the parents it read from the hardware. Importers: ``tenancy.soft``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migctl.engine.soft_parents import Parent
from migctl.errors import InsufficientResourcesError, InUseError, MigctlError
from migctl.leases.soft import SoftLedger
from migctl.leases.types import SoftGrant, SoftSlot
from migctl.mps.admission import ActiveShare, AdmissionPolicy, admit, check_other_users
from migctl.mps.shares import Holder, SoftShare, sms_for_share

MAX_REASONS = 6


@dataclass(frozen=True, slots=True)
class SoftWant:
    """What is asked: the share, the rules it may bend, and where each parent's pipes are."""

    share: SoftShare
    policy: AdmissionPolicy
    pipe_dir: Callable[[str], str]  # parent UUID -> its MPS daemon's pipe directory
    named: bool = False  # the caller named the parent (--parent)


def active_shares(ledger: SoftLedger, parent_uuid: str) -> list[ActiveShare]:
    """The soft leases on a parent, as the admission rules read them."""
    return [
        ActiveShare(
            parent_uuid,
            lease.share_percent or 0,
            lease.memory_limit_mib or 0,
            Holder(lease.user, lease.lease_id),
        )
        for lease in ledger.on_parent(parent_uuid)
    ]


def choose_share(
    ledger: SoftLedger, parents: Sequence[Parent], want: SoftWant, user: str
) -> tuple[SoftGrant, tuple[str, ...]]:
    """The soft device to grant ``user`` and the warnings to tell; raises what refuses it."""
    reasons: list[MigctlError] = []
    slotted = {slot.parent_uuid for slot in ledger.slots}
    by_uuid = {parent.uuid: parent for parent in parents}
    found = _from_slots(ledger, by_uuid, want, user, reasons)
    if found is not None:
        return found
    for parent in _ordered(ledger, parents, user):
        if parent.uuid in slotted:
            if want.named:
                reasons.append(_slots_taken(ledger, parent, want))
            continue
        try:
            return _new_share(ledger, parent, want, user)
        except (InsufficientResourcesError, InUseError) as refused:
            reasons.append(refused)
    raise _refusal(reasons, want, parents)


def _from_slots(
    ledger: SoftLedger,
    parents: dict[str, Parent],
    want: SoftWant,
    user: str,
    reasons: list[MigctlError],
) -> tuple[SoftGrant, tuple[str, ...]] | None:
    """The smallest free slot that fits (on a parent that exists now), else None."""
    fitting = [
        slot
        for slot in ledger.free_slots()
        if slot.parent_uuid in parents
        and slot.percent >= want.share.percent
        and (want.share.memory_mib is None or slot.memory_limit_mib >= want.share.memory_mib)
    ]
    fitting.sort(key=lambda s: (s.percent, s.memory_limit_mib, s.gpu_index, s.uuid))
    for slot in fitting:
        parent = parents[slot.parent_uuid]
        mine = active_shares(ledger, parent.uuid)
        others = sorted({s.user for s in mine if s.user != user})
        try:
            notes = (
                (check_other_users(parent.device, user, others, mine, want.policy),)
                if others
                else ()
            )
        except InUseError as refused:
            reasons.append(refused)
            continue
        return _grant(parent, slot.uuid, slot.percent, slot.memory_limit_mib, want), notes
    return None


def _new_share(
    ledger: SoftLedger, parent: Parent, want: SoftWant, user: str
) -> tuple[SoftGrant, tuple[str, ...]]:
    whole = ledger.mig_leases.get(parent.uuid)
    if whole is not None:
        raise InUseError(
            f"{parent.device.label()} is leased whole to {whole.describe_holder()}",
            hint="choose another parent, or wait for that lease to end",
            context={"parent": parent.uuid, "lease_id": whole.lease_id},
        )
    admission = admit(
        parent.device, want.share, user, active_shares(ledger, parent.uuid), want.policy
    )
    device = admission.device
    grant = _grant(
        parent, ledger.next_id(parent.uuid), device.percent, device.memory_limit_mib, want
    )
    return grant, admission.warnings


def _grant(parent: Parent, uuid: str, percent: int, memory_mib: int, want: SoftWant) -> SoftGrant:
    sms = parent.device.sm_count
    return SoftGrant(
        uuid=uuid,
        parent_uuid=parent.uuid,
        gpu_index=parent.device.gpu_index,
        gi_id=parent.gi_id,
        ci_id=parent.ci_id,
        percent=percent,
        memory_limit_mib=memory_mib,
        sm_count=None if sms is None else sms_for_share(percent, sms),
        pipe_dir=want.pipe_dir(parent.uuid),
    )


def _ordered(ledger: SoftLedger, parents: Sequence[Parent], user: str) -> list[Parent]:
    """Parents this user already shares first, then by GPU index (whole GPUs first)."""

    def key(parent: Parent) -> tuple[bool, int, int, int, str]:
        mine = any(lease.user == user for lease in ledger.on_parent(parent.uuid))
        return (not mine, parent.device.gpu_index, parent.gi_id, parent.ci_id, parent.uuid)

    return sorted(parents, key=key)


def _slots_taken(ledger: SoftLedger, parent: Parent, want: SoftWant) -> MigctlError:
    slots = ledger.slots_of(parent.uuid)
    free = [s for s in ledger.free_slots() if s.parent_uuid == parent.uuid]
    return InsufficientResourcesError(
        f"{parent.device.label()} is shared out by a layout ({_slot_list(slots)}); no free "
        f"share of at least {want.share.describe()} (free: {_slot_list(free) or 'none'})",
        hint="ask for a share the layout offers, wait for one to be released, or change the "
        "layout's 'shares'",
        context={"parent": parent.uuid},
    )


def _slot_list(slots: Sequence[SoftSlot]) -> str:
    return ", ".join(f"{s.percent}%/{s.memory_limit_mib} MiB" for s in slots)


def _refusal(
    reasons: Sequence[MigctlError], want: SoftWant, parents: Sequence[Parent]
) -> MigctlError:
    if want.named and len(reasons) == 1:
        return reasons[0]
    if not parents:
        return InsufficientResourcesError(
            "this machine has no GPU or MIG device to share",
            hint="soft devices are carved from GPUs with MIG off and from MIG devices",
        )
    if not reasons:
        return InsufficientResourcesError(
            f"no free soft share of at least {want.share.describe()}",
            hint="wait for a share to be released, or ask for less",
        )
    kind = InUseError if all(isinstance(r, InUseError) for r in reasons) else None
    text = "; ".join(r.message for r in reasons[:MAX_REASONS])
    more = f" (and {len(reasons) - MAX_REASONS} more)" if len(reasons) > MAX_REASONS else ""
    message = f"no device can take a soft share of {want.share.describe()}: {text}{more}"
    hint = reasons[0].hint or "ask for less, or wait for shares to be released"
    if kind is InUseError:
        return InUseError(message, hint=hint)
    return InsufficientResourcesError(message, hint=hint)
