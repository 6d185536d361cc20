"""Plan soft shares: which MPS control daemons and shares to create or remove, and whom it disturbs.

Why this exists: a layout's ``shares`` say what each parent must offer; the machine has
shares now, some held by running clients. MPS cannot change a running client's SM share or
memory limit (it reads them once, when the client starts), so a share that changes is a
share removed and another created, and its holders must exit (drain) first. The plan keeps
every share that already matches (busy ones first, so their holders run on), removes the
rest, and lists each holder the change would cut off, the way ``migctl plan`` lists the
MIG instances it would destroy. A parent with no shares left loses its control daemon; a
parent whose daemon died gets it started again.

Pure: the caller reads the current state (lease store, :class:`~migctl.mps.control.MpsControl`)
and carries out the operations. Anyone may import it above ``migctl.mps.shares``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from migctl.errors import InUseError
from migctl.mps.shares import Holder, ParentDevice, SoftDevice


@dataclass(frozen=True, slots=True)
class CurrentShare:
    """A share a parent offers now (``share_id`` is stable: the lease store's key)."""

    share_id: str
    percent: int
    memory_limit_mib: int
    holders: tuple[Holder, ...] = ()


@dataclass(frozen=True, slots=True)
class ParentState:
    """One parent as it is now: its shares, and whether its MPS control daemon runs."""

    parent: ParentDevice
    daemon_running: bool
    shares: tuple[CurrentShare, ...] = ()


class SoftOpKind(enum.StrEnum):
    REMOVE_SHARE = "remove-share"
    STOP_DAEMON = "stop-daemon"
    START_DAEMON = "start-daemon"
    CREATE_SHARE = "create-share"


_ORDER = {kind: n for n, kind in enumerate(SoftOpKind)}


@dataclass(frozen=True, slots=True)
class SoftOp:
    """One step: on ``parent``, a daemon start/stop or a share created/removed."""

    kind: SoftOpKind
    parent: ParentDevice
    percent: int | None = None
    memory_limit_mib: int | None = None
    share_id: str | None = None

    def describe(self) -> str:
        where = self.parent.label()
        if self.kind in (SoftOpKind.START_DAEMON, SoftOpKind.STOP_DAEMON):
            verb = "start" if self.kind is SoftOpKind.START_DAEMON else "stop"
            return f"{verb} the MPS control daemon of {where}"
        verb = "create" if self.kind is SoftOpKind.CREATE_SHARE else f"remove {self.share_id}:"
        return f"{verb} share {self.percent}% / {self.memory_limit_mib} MiB on {where}"

    def sort_key(self) -> tuple[int, int, str, int, str]:
        return (
            _ORDER[self.kind],
            self.parent.gpu_index,
            self.parent.uuid,
            -(self.percent or 0),
            self.share_id or "",
        )


@dataclass(frozen=True, slots=True)
class Disruption:
    """Holders a step would cut off: they must exit (or be drained) before it runs."""

    parent: ParentDevice
    share_id: str
    holders: tuple[Holder, ...]
    reason: str

    def describe(self) -> str:
        who = "; ".join(h.describe() for h in self.holders)
        return f"{self.parent.label()} share {self.share_id}: {self.reason}; holders: {who}"


@dataclass(frozen=True, slots=True)
class SoftPlan:
    """Ordered steps (removals first), the shares kept, and the holders disturbed."""

    ops: tuple[SoftOp, ...]
    kept: tuple[CurrentShare, ...]
    disruptions: tuple[Disruption, ...]

    @property
    def changes(self) -> bool:
        return bool(self.ops)

    def require_drained(self, force: bool = False) -> None:
        """InUseError naming every disturbed holder, unless ``force`` (they will be cut off)."""
        if not self.disruptions or force:
            return
        lines = "; ".join(d.describe() for d in self.disruptions)
        raise InUseError(
            f"the soft share change would cut off running clients: {lines}",
            hint="MPS cannot change a running client's share: wait for those holders to exit "
            "(or release their leases), or pass --force to end them",
            context={"shares": [d.share_id for d in self.disruptions]},
        )


def plan_soft(
    current: Sequence[ParentState], desired: Mapping[str, Sequence[SoftDevice]]
) -> SoftPlan:
    """The steps from ``current`` to ``desired`` (parent UUID -> its soft devices).

    A parent absent from ``desired`` (or with no devices) loses its shares and daemon.
    """
    ops: list[SoftOp] = []
    kept: list[CurrentShare] = []
    disruptions: list[Disruption] = []
    known = {state.parent.uuid for state in current}
    for state in current:
        wanted = list(desired.get(state.parent.uuid, ()))
        _plan_parent(state, wanted, ops, kept, disruptions)
    for uuid, devices in desired.items():
        if uuid not in known and devices:
            parent = devices[0].parent
            _plan_parent(ParentState(parent, daemon_running=False), list(devices), ops, kept, [])
    ops.sort(key=SoftOp.sort_key)
    disruptions.sort(key=lambda d: (d.parent.gpu_index, d.parent.uuid, d.share_id))
    return SoftPlan(tuple(ops), tuple(kept), tuple(disruptions))


def _plan_parent(
    state: ParentState,
    wanted: list[SoftDevice],
    ops: list[SoftOp],
    kept: list[CurrentShare],
    disruptions: list[Disruption],
) -> None:
    parent = state.parent
    # busy shares first, so a matching busy share is kept rather than an idle twin
    for share in sorted(state.shares, key=lambda s: (not s.holders, s.share_id)):
        match = next((d for d in wanted if (d.percent, d.memory_limit_mib) == _size(share)), None)
        if match is not None:
            wanted.remove(match)
            kept.append(share)
            continue
        ops.append(
            SoftOp(
                SoftOpKind.REMOVE_SHARE,
                parent,
                share.percent,
                share.memory_limit_mib,
                share.share_id,
            )
        )
        if share.holders:
            disruptions.append(Disruption(parent, share.share_id, share.holders, _why(wanted)))
    for device in wanted:
        ops.append(SoftOp(SoftOpKind.CREATE_SHARE, parent, device.percent, device.memory_limit_mib))
    keeps_any = bool(wanted) or any(k in state.shares for k in kept)
    if keeps_any and not state.daemon_running:
        ops.append(SoftOp(SoftOpKind.START_DAEMON, parent))
    if not keeps_any and state.daemon_running:
        ops.append(SoftOp(SoftOpKind.STOP_DAEMON, parent))


def _size(share: CurrentShare) -> tuple[int, int]:
    return (share.percent, share.memory_limit_mib)


def _why(wanted: Sequence[SoftDevice]) -> str:
    if wanted:
        return (
            "the share is resized or replaced, and MPS cannot change a running client's "
            "share: its clients must exit first"
        )
    return "the share is removed: its clients must exit first"
