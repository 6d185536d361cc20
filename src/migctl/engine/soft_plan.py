"""Plan a layout's soft shares on the machine as it is: which shares stay, go, or come.

Why this exists: a native layout may give a GPU with MIG off, or the MIG devices of an instance
entry, ``shares`` (:mod:`migctl.layout.shares`). ``plan``, ``apply --dry-run``, ``apply`` and
``check`` must judge them on the live machine: each parent of the GPUs the layout covers gets
the soft devices its entry asks for (none when the entry has no ``shares``, or when the MIG
change destroys the parent); the shares it has are the soft devices a layout made there
(*slots*) and, where the layout now shares the parent, the soft leases made without one. The
plan (:func:`migctl.mps.plan.plan_soft`) keeps every share that matches, removes the rest, and
lists the holders a removal or resize would cut off (MPS cannot change a running client's
share). A GPU whose MIG mode is still to change is planned for after the change: its current
parents lose their shares. Importers: ``engine.soft_apply`` and ``node``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migctl.backends.base import Backend
from migctl.engine.soft_parents import Parent, soft_parents
from migctl.layout.shares import GpuShares, ShareLayout
from migctl.leases import Lease
from migctl.leases.soft import SoftLedger
from migctl.mps.host import MpsHost
from migctl.mps.plan import CurrentShare, ParentState, SoftOpKind, SoftPlan, plan_soft
from migctl.mps.shares import Holder, SoftDevice
from migctl.planner import CreateCi, DestroyCi, DestroyGi, Plan


@dataclass(frozen=True)
class SoftTargets:
    """What a layout asks of the soft shares of each GPU it covers, and whether MIG is on."""

    shares: Mapping[int, GpuShares]
    mig_enabled: Mapping[int, bool]


@dataclass(frozen=True)
class Wanted:
    """The parents of the covered GPUs now, and the soft devices each must end with."""

    parents: dict[str, Parent]
    desired: dict[str, tuple[SoftDevice, ...]]
    shared: set[str] = field(default_factory=set)  # parents the layout gives shares
    new_devices: dict[int, list[str]] = field(default_factory=dict)  # words, per GPU


def wanted(
    backend: Backend, targets: SoftTargets, plans: Mapping[int, Plan] | None = None
) -> Wanted:
    """The soft devices each parent must have (resolved against its memory and SMs).

    ``plans``: the MIG plans about to run (plan, dry run, the check before apply): parents they
    destroy must lose their shares, and MIG devices they create are told in words.
    """
    plans = plans or {}
    parents = {p.uuid: p for p in soft_parents(backend, set(targets.shares))}
    desired: dict[str, tuple[SoftDevice, ...]] = {}
    shared: set[str] = set()
    new_devices: dict[int, list[str]] = {}
    for uuid, parent in parents.items():
        gpu = parent.device.gpu_index
        plan = plans.get(gpu)
        layout = _layout_for(parent, targets.shares[gpu])
        if layout is None or _goes(parent, plan, targets, backend):
            desired[uuid] = ()
            continue
        desired[uuid] = layout.resolve(parent.device)[0]
        shared.add(uuid)
    for gpu, plan in sorted(plans.items()):
        lines = _created(plan, targets.shares.get(gpu))
        if lines:
            new_devices[gpu] = lines
    return Wanted(parents, desired, shared, new_devices)


def _layout_for(parent: Parent, shares: GpuShares) -> ShareLayout | None:
    if parent.whole:
        return shares.whole
    return shares.for_device(parent.gi_profile, parent.device.name)


def _goes(parent: Parent, plan: Plan | None, targets: SoftTargets, backend: Backend) -> bool:
    """Whether the parent will not exist as it is once the MIG change is done."""
    gpu = parent.device.gpu_index
    info = backend.gpu(gpu)
    if bool(info.mig and info.mig.current) != targets.mig_enabled[gpu]:
        return True
    if plan is None or parent.whole:
        return False
    for op in plan.ops:
        if isinstance(op, DestroyGi) and op.gi_id == parent.gi_id:
            return True
        if isinstance(op, DestroyCi) and (op.gi_id, op.ci_id) == (parent.gi_id, parent.ci_id):
            return True
    return False


def _created(plan: Plan, shares: GpuShares | None) -> list[str]:
    if shares is None:
        return []
    made = sorted({op.profile for op in plan.ops if isinstance(op, CreateCi)})
    return [
        f"each new MIG device {entry.ci_profile} gets soft shares {entry.shares.describe()}"
        for entry in shares.mig
        if entry.ci_profile in made
    ]


def current_states(want: Wanted, ledger: SoftLedger, host: MpsHost) -> list[ParentState]:
    """Each covered parent as it is: its slots (and, where the layout now shares it, its
    soft leases made without a layout), with their holders, and whether its daemon runs."""
    states = []
    for uuid, parent in sorted(want.parents.items()):
        shares = [
            CurrentShare(s.uuid, s.percent, s.memory_limit_mib, _holders(ledger.holder_of(s.uuid)))
            for s in ledger.slots_of(uuid)
        ]
        if uuid in want.shared:
            shares += [_adhoc(lease) for lease in ledger.adhoc(uuid)]
        running = host.control(uuid).state().status.value == "running"
        states.append(ParentState(parent.device, running, tuple(shares)))
    return states


def _holders(lease: Lease | None) -> tuple[Holder, ...]:
    if lease is None:
        return ()
    return (Holder(lease.user, lease.lease_id, (lease.pid,) if lease.pid else ()),)


def _adhoc(lease: Lease) -> CurrentShare:
    return CurrentShare(
        lease.uuid, lease.share_percent or 0, lease.memory_limit_mib or 0, _holders(lease)
    )


def soft_plan(want: Wanted, ledger: SoftLedger, host: MpsHost) -> SoftPlan:
    """The plan from the ledger to ``want``; a daemon that soft leases still need is kept."""
    plan = plan_soft(current_states(want, ledger, host), want.desired)
    in_use = {lease.parent_uuid for lease in ledger.leases}
    ops = tuple(
        op
        for op in plan.ops
        if not (op.kind is SoftOpKind.STOP_DAEMON and op.parent.uuid in in_use)
    )
    return SoftPlan(ops, plan.kept, plan.disruptions)


def plan_lines(plan: SoftPlan, want: Wanted) -> dict[int, list[str]]:
    """Per GPU, the plan's steps in words (and the MIG devices still to be created)."""
    lines: dict[int, list[str]] = {}
    for op in plan.ops:
        lines.setdefault(op.parent.gpu_index, []).append(op.describe())
    for gpu, more in want.new_devices.items():
        lines.setdefault(gpu, []).extend(more)
    return lines


def disruption_lines(plan: SoftPlan) -> dict[int, list[str]]:
    """Per GPU, each soft share the plan cuts off, and its holders."""
    found: dict[int, list[str]] = {}
    for item in plan.disruptions:
        found.setdefault(item.parent.gpu_index, []).append(f"soft share {item.describe()}")
    return found


def differences(plan: SoftPlan) -> dict[int, list[str]]:
    """Per GPU, how the soft shares differ from the layout, in words (``check``)."""
    found: dict[int, list[str]] = {}
    for op in plan.ops:
        where = op.parent.label()
        if op.kind is SoftOpKind.REMOVE_SHARE:
            text = f"extra soft share {op.share_id} ({op.percent}% / {op.memory_limit_mib} MiB)"
        elif op.kind is SoftOpKind.CREATE_SHARE:
            text = f"missing soft share {op.percent}% / {op.memory_limit_mib} MiB"
        elif op.kind is SoftOpKind.START_DAEMON:
            text = "its MPS control daemon is not running"
        else:
            text = "its MPS control daemon runs, but no share needs it"
        found.setdefault(op.parent.gpu_index, []).append(f"{where}: {text}")
    return found


def merge(into: dict[int, list[str]], more: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    """``into`` with ``more``'s lines appended per GPU (a new dict)."""
    merged = {gpu: list(lines) for gpu, lines in into.items()}
    for gpu, lines in more.items():
        merged.setdefault(gpu, []).extend(lines)
    return dict(sorted(merged.items()))
