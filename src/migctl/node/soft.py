"""A node's soft devices: how it runs MPS, what it shows, and the repair when it opens.

Why this module exists: ``LocalNode`` leases soft devices (MPS shares) like MIG devices, shows
them in its inventory and metrics, and owns each parent's MPS control daemon. This module holds
the node's side of that: :func:`mps_host` (the real ``nvidia-cuda-mps-control``, or on a
simulated machine the simulator's stand-in, told the size of each parent and which simulated
machine's NVML shows its clients; private directories under the machine's state directory),
:func:`soft_views` (each soft device with its parent, share, limit, holder and MPS server) and
:func:`repair` (at open: a daemon that crashed is started again where a soft lease or a
layout's share needs it, and a stale or idle one is cleaned up or stopped).

Used by ``node.local`` (and the daemon's lease service, through it).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from typing import TYPE_CHECKING, Protocol

from migctl.engine.soft_parents import Parent, soft_parents, start_daemon, stop_if_idle
from migctl.errors import MigctlError
from migctl.mps.control import DaemonStatus
from migctl.mps.host import MpsHost
from migctl.mps.shares import ParentDevice
from migctl.reports import SoftDeviceView

if TYPE_CHECKING:
    from pathlib import Path

    from migctl.backends.base import Backend
    from migctl.engine.soft_plan import SoftTargets
    from migctl.leases import Lease, LeaseStore
    from migctl.leases.soft import SoftLedger
    from migctl.leases.types import SoftSlot
    from migctl.reports import ApplyOutcome, PlanReport
    from migctl.settings import Settings

log = logging.getLogger(__name__)

SIM_CONTROL = ("-m", "migctl.sim.mps_control")  # after the Python interpreter


class SoftNode(Protocol):
    """What the soft side needs of a ``LocalNode``."""

    @property
    def backend(self) -> Backend: ...

    @property
    def store(self) -> LeaseStore: ...

    @property
    def mps(self) -> MpsHost: ...

    def soft_store(self) -> LeaseStore | None: ...


def mps_host(settings: Settings, machine_dir: Path | None = None) -> MpsHost:
    """How this machine runs MPS control daemons, under its state directory: the real
    ``nvidia-cuda-mps-control``, or for a simulated machine (``machine_dir``: its own files'
    directory, ``Backend.files_dir``) the simulator's stand-in, told each parent's size and
    the machine's state file (so its NVML shows the clients as processes)."""
    owner = str(settings.lease_db)
    if machine_dir is None:
        return MpsHost(settings.state_dir, owner=owner)
    return MpsHost(
        settings.state_dir,
        program=(sys.executable, *SIM_CONTROL),
        env={"MIGCTL_SIM_MPS_MACHINE": str(machine_dir.with_suffix(".json"))},
        parent_env=_simulated_device,
        owner=owner,
    )


def _simulated_device(parent: ParentDevice) -> dict[str, str]:
    env = {"MIGCTL_SIM_MPS_MEMORY_MIB": str(parent.memory_mib)}
    if parent.sm_count is not None:
        env["MIGCTL_SIM_MPS_SMS"] = str(parent.sm_count)
    return env


def soft_views(
    backend: Backend, ledger: SoftLedger, host: MpsHost, gpus: set[int] | None = None
) -> list[SoftDeviceView]:
    """Every soft device of ``gpus`` (default all): the layouts' slots (held or free) and the
    leases made without a layout, by GPU then soft device id."""
    names = {p.uuid: p.device.name for p in soft_parents(backend, gpus)}
    servers: dict[str, str] = {}
    views = [
        _slot_view(slot, ledger, names, _server(host, slot.parent_uuid, servers))
        for slot in ledger.slots
        if gpus is None or slot.gpu_index in gpus
    ]
    slotted = {slot.uuid for slot in ledger.slots}
    for lease in ledger.leases:
        if lease.uuid in slotted or (gpus is not None and lease.gpu_index not in gpus):
            continue
        views.append(_lease_view(lease, names, _server(host, lease.parent_uuid or "", servers)))
    return sorted(views, key=lambda v: (v.gpu_index, v.parent_uuid, v.uuid))


def _slot_view(
    slot: SoftSlot, ledger: SoftLedger, names: dict[str, str], server: str
) -> SoftDeviceView:
    return SoftDeviceView(
        slot.uuid, slot.parent_uuid, slot.gpu_index, names.get(slot.parent_uuid, "gone"),
        slot.percent, slot.memory_limit_mib, slot.sm_count, ledger.holder_of(slot.uuid),
        server, from_layout=True,
    )  # fmt: skip


def _lease_view(lease: Lease, names: dict[str, str], server: str) -> SoftDeviceView:
    parent = lease.parent_uuid or ""
    return SoftDeviceView(
        lease.uuid, parent, lease.gpu_index, names.get(parent, "gone"),
        lease.share_percent or 0, lease.memory_limit_mib or 0, lease.sm_count, lease,
        server, from_layout=False,
    )  # fmt: skip


def _server(host: MpsHost, parent_uuid: str, seen: dict[str, str]) -> str:
    """running / stopped / stale: the parent's MPS control daemon (read once per parent)."""
    if parent_uuid not in seen:
        try:
            seen[parent_uuid] = host.control(parent_uuid).state().status.value
        except MigctlError:
            seen[parent_uuid] = "unknown"
    return seen[parent_uuid]


def repair(backend: Backend, store: LeaseStore | None, host: MpsHost) -> list[str]:
    """Bring every parent's MPS daemon to what its soft leases and shares need; what was done.

    A needed daemon that is stopped or crashed (stale) is started; an unneeded stale one is
    cleaned; an unneeded running one is stopped when no client is attached; the directories
    of a stopped daemon whose parent is gone (a destroyed MIG device) are removed.
    """
    daemons = host.daemons()
    if not daemons:
        return []
    needed = store.soft_ledger().parents() if store is not None else set()
    parents: dict[str, Parent] = {}
    done: list[str] = []
    for paths in daemons:
        uuid = paths.parent_uuid
        status = host.control(uuid).state().status
        if uuid in needed and status is DaemonStatus.RUNNING:
            continue
        if not parents:
            parents = {p.uuid: p for p in soft_parents(backend)}
        if uuid not in needed:
            if status is not DaemonStatus.STOPPED and stop_if_idle(store, host, uuid):
                done.append(f"stopped the idle MPS control daemon of {uuid}")
            if uuid not in parents and host.control(uuid).state().status is DaemonStatus.STOPPED:
                shutil.rmtree(paths.root, ignore_errors=True)
            continue
        if uuid not in parents:
            log.warning("soft shares of %s remain, but the device is gone", uuid)
            continue
        try:
            start_daemon(host, parents[uuid].device)
            done.append(f"started the MPS control daemon of {parents[uuid].device.label()}")
        except MigctlError as error:
            log.error("MPS control daemon of %s did not start: %s", uuid, error)
    return done


def plan_with_soft(
    backend: Backend,
    store: LeaseStore | None,
    host: MpsHost,
    targets: SoftTargets,
    report: PlanReport,
) -> PlanReport:
    """``report`` with the soft-share steps and the holders they would cut off."""
    from migctl.engine.soft_plan import disruption_lines, merge, plan_lines, soft_plan, wanted
    from migctl.leases.soft import SoftLedger

    want = wanted(backend, targets, report.plans)
    plan = soft_plan(want, store.soft_ledger() if store is not None else SoftLedger(), host)
    disturbs = merge(report.disturbs, disruption_lines(plan))
    return dataclasses.replace(report, disturbs=disturbs, soft=plan_lines(plan, want))


def apply_with_soft(
    node: SoftNode, targets: SoftTargets, outcome: ApplyOutcome, *, force: bool
) -> None:
    """After the MIG part of an apply: its soft part (a dry run: the plan), into ``outcome``."""
    from migctl.engine.soft_apply import apply_soft

    if outcome.dry_run:
        report = plan_with_soft(node.backend, node.soft_store(), node.mps, targets, outcome.report)
        outcome.soft, outcome.disturbs = report.soft, report.disturbs
        return
    if outcome.failure is not None:
        return
    done = apply_soft(node.backend, node.store, node.mps, targets, force=force)
    outcome.soft = done
    outcome.soft_done = sum(len(lines) for lines in done.values())


def soft_differences(
    backend: Backend, store: LeaseStore | None, host: MpsHost, targets: SoftTargets
) -> dict[int, list[str]]:
    """Per GPU, how the soft shares differ from what ``targets`` asks (``check``)."""
    from migctl.engine.soft_plan import differences, soft_plan, wanted
    from migctl.leases.soft import SoftLedger

    ledger = store.soft_ledger() if store is not None else SoftLedger()
    return differences(soft_plan(wanted(backend, targets), ledger, host))


def clear_whole_gpu_shares(
    backend: Backend, store: LeaseStore | None, host: MpsHost, gpus: list[int], *, force: bool
) -> int:
    """Before MIG goes on: the chosen GPUs' whole-GPU soft shares must go (they would name a
    GPU CUDA no longer sees). Held ones refuse it (InUseError naming the holders) unless
    ``force``, which ends those leases as revoked; returns how many shares were removed."""
    from migctl.engine.soft_parents import stop_if_idle
    from migctl.errors import InUseError

    if store is None:
        return 0
    whole = {p.uuid: p for p in soft_parents(backend, set(gpus)) if p.whole}
    with store.soft_editing() as editor:
        held = [x for x in editor.ledger.leases if x.parent_uuid in whole]
        if held and not force:
            raise InUseError(
                "MIG mode would take the whole GPU away from its soft devices: "
                + "; ".join(f"{x.uuid} ({x.describe_holder()})" for x in held),
                hint="release those soft leases first, or pass --force to end them",
                context={"leases": [x.lease_id for x in held]},
            )
        for lease in held:
            editor.revoke(lease, by="migctl mode enable --force")
        gone = [s.uuid for s in editor.ledger.slots if s.parent_uuid in whole]
        for uuid in gone:
            editor.remove_slot(uuid)
    for uuid in whole:
        stop_if_idle(store, host, uuid)
    return len(gone) + len(held)
