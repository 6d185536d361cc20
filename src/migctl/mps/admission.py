"""Admission rules for soft shares: memory is hard, SMs only with a flag, one user per server.

Why this exists: MPS enforces a client's SM share and pinned memory limit, but it does not
stop anyone from handing out more than the device has, and it serves one Unix user at a
time: a second user's client waits until every client of the first has exited (the two
take turns, they never run side by side). migctl must refuse what cannot hold and say so,
never pretend. The rules, for every share of one parent:

* the pinned memory limits, summed, must fit the parent's memory (hard; no option);
* the SM shares, summed, may pass 100% only with ``oversubscribe`` (then they compete);
* another user's shares on the same parent are refused, naming that user, unless
  ``allow_other_user`` (then a warning says they take turns);
* a running client's share cannot change (MPS reads it once, at the client's start): see
  :mod:`migctl.mps.plan` for reshapes.

Pure: the caller passes the shares already granted (from the lease store). Anyone above
``migctl.mps.shares`` may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError, InUseError
from migctl.mps.shares import (
    MAX_PERCENT,
    Holder,
    ParentDevice,
    SoftDevice,
    SoftShare,
    default_memory_mib,
    soft_device,
)

TURNS_WARNING = (
    "{parent}: MPS serves one Unix user at a time: {user}'s clients start only after every "
    "client of {others} has exited (the users take turns; they never run side by side)"
)


@dataclass(frozen=True, slots=True)
class ActiveShare:
    """A share granted now on a parent: its size and who holds it."""

    parent_uuid: str
    percent: int
    memory_limit_mib: int
    holder: Holder

    @property
    def user(self) -> str:
        return self.holder.user

    def describe(self) -> str:
        return f"{self.percent}% / {self.memory_limit_mib} MiB held by {self.holder.describe()}"


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """What the caller explicitly allows beyond the safe defaults."""

    oversubscribe: bool = False  # SM shares may sum past 100%
    allow_other_user: bool = False  # a second Unix user may share the parent (taking turns)


@dataclass(frozen=True, slots=True)
class Admission:
    """A share that may be granted, and what the user must be told about it."""

    device: SoftDevice
    warnings: tuple[str, ...] = ()
    takes_turns_with: tuple[str, ...] = ()  # other users on the same MPS server


def admit(
    parent: ParentDevice,
    share: SoftShare,
    user: str,
    existing: Sequence[ActiveShare],
    policy: AdmissionPolicy = AdmissionPolicy(),
) -> Admission:
    """Check one new share of ``parent`` for ``user`` against the shares granted there.

    Raises InsufficientResourcesError (memory, SMs) or InUseError (another user), and
    changes nothing; returns the soft device with its settled memory limit and warnings.
    """
    mine = [s for s in existing if s.parent_uuid == parent.uuid]
    warnings = list(check_sm_sum(parent, [*(s.percent for s in mine), share.percent], policy))
    device = soft_device(parent, share, already_mib=sum(s.memory_limit_mib for s in mine))
    others = sorted({s.user for s in mine if s.user != user})
    if others:
        warnings.append(check_other_users(parent, user, others, mine, policy))
    return Admission(device, tuple(warnings), tuple(others))


def check_sm_sum(
    parent: ParentDevice, percents: Sequence[int], policy: AdmissionPolicy
) -> tuple[str, ...]:
    """SM shares summed past 100% need ``oversubscribe``; then a warning, else a refusal."""
    total = sum(percents)
    if total <= MAX_PERCENT:
        return ()
    if not policy.oversubscribe:
        free = max(MAX_PERCENT - sum(percents[:-1]), 0)
        raise InsufficientResourcesError(
            f"{parent.label()}: SM shares would sum to {total}% (over 100%)",
            hint=(f"ask for at most {free}%" if free else "every SM is already shared out")
            + ", or allow it explicitly with --oversubscribe (the clients then compete "
            "for SMs and none gets its full share)",
            context={"parent": parent.uuid, "total_percent": total, "free_percent": free},
        )
    return (
        f"{parent.label()}: SM shares sum to {total}% (oversubscribed): clients compete "
        "for SMs and none is sure to get its full share",
    )


def check_other_users(
    parent: ParentDevice,
    user: str,
    others: Sequence[str],
    mine: Sequence[ActiveShare],
    policy: AdmissionPolicy,
) -> str:
    """Another user on the parent: InUseError naming them, or (allowed) the warning."""
    names = ", ".join(others)
    if not policy.allow_other_user:
        held = "; ".join(s.describe() for s in mine if s.user != user)
        raise InUseError(
            f"{parent.label()} is shared through MPS by {names} ({held}): MPS serves one "
            f"Unix user at a time, so {user}'s clients would wait until all of theirs exit",
            hint="choose another GPU or MIG device, wait for those shares to end, or allow "
            "taking turns explicitly with --allow-other-user",
            context={"parent": parent.uuid, "holders": list(others)},
        )
    return TURNS_WARNING.format(parent=parent.label(), user=user, others=names)


def check_share_set(
    parent: ParentDevice, shares: Sequence[SoftShare], policy: AdmissionPolicy
) -> tuple[tuple[SoftDevice, ...], tuple[str, ...]]:
    """A whole set of shares for one parent (a layout): memory and SM rules, in order."""
    warnings = check_sm_sum(parent, [s.percent for s in shares], policy)
    limits = [
        s.memory_mib if s.memory_mib is not None else default_memory_mib(parent, s.percent)
        for s in shares
    ]
    if sum(limits) > parent.memory_mib:
        raise insufficient_memory(parent, limits)
    devices = tuple(SoftDevice(parent, s.percent, m) for s, m in zip(shares, limits, strict=True))
    return devices, warnings


def insufficient_memory(
    parent: ParentDevice, limits_mib: Sequence[int]
) -> InsufficientResourcesError:
    """Shares whose pinned limits sum past the parent's memory."""
    total = sum(limits_mib)
    each = " + ".join(str(m) for m in limits_mib)
    return InsufficientResourcesError(
        f"{parent.label()}: pinned memory limits sum to {total} MiB ({each}), more than "
        f"its {parent.memory_mib} MiB",
        hint="lower the memory limits or the number of shares (memory limits are hard: "
        "they cannot be oversubscribed)",
        context={"parent": parent.uuid, "asked_mib": total, "memory_mib": parent.memory_mib},
    )
