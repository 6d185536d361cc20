"""The devices soft shares are carved from, and their MPS daemons: started, stopped when idle.

Why this exists: soft leases (``migctl.tenancy.soft``), layouts with ``shares``
(``engine.soft_apply``) and the node's start-up repair all need the same two things: the
machine's parents as the hardware shows them now (each GPU with MIG off, whole; each MIG
device of a GPU with MIG on), and one rule for each parent's MPS control daemon: it runs while
a soft lease or a layout's share needs it, and stops when neither does and no client is
attached (a daemon with clients is left running; they keep their shares until they exit).
Importers: the engine, ``migctl.tenancy`` and ``migctl.node``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.errors import InUseError, MigctlError
from migctl.leases import LeaseStore
from migctl.mps.host import MpsHost
from migctl.mps.shares import ParentDevice, resolve_parent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Parent:
    """A device soft shares may be carved from now, with its MIG ids (-1 for a whole GPU)."""

    device: ParentDevice
    gi_id: int = -1
    ci_id: int = -1
    gi_profile: str = ""  # a MIG device's GI profile ("" for a whole GPU)

    @property
    def uuid(self) -> str:
        return self.device.uuid

    @property
    def whole(self) -> bool:
        return self.gi_id < 0


def sm_counts(backend: Backend, gpu_index: int) -> dict[tuple[str, str], int | None]:
    """(GI profile, CI profile name) -> SMs, from the GPU's live geometry."""
    model = backend.live_model(gpu_index)
    counts: dict[tuple[str, str], int | None] = {
        (ci.gi_profile, ci.name): ci.sm_count for ci in model.ci_profiles
    }
    for gi in model.gi_profiles:
        counts.setdefault((gi.name, gi.name), gi.sm_count)
    return counts


def soft_parents(backend: Backend, gpus: set[int] | None = None) -> list[Parent]:
    """Every device soft shares may be carved from now (of ``gpus``, default all): each GPU
    with MIG off, whole, and each MIG device of the GPUs with MIG on; by GPU, then placement."""
    found: list[Parent] = []
    for info in backend.gpus():
        if gpus is not None and info.index not in gpus:
            continue
        if info.mig is not None and info.mig.current:
            counts = sm_counts(backend, info.index)
            for device in backend.mig_devices(info.index):
                sms = counts.get((device.gi_profile, device.ci_profile))
                parent = ParentDevice(
                    device.uuid, info.index, device.memory_total_mib, sms, device.ci_profile
                )
                found.append(Parent(parent, device.gi_id, device.ci_id, device.gi_profile))
            continue
        try:
            sms = backend.live_model(info.index).sm_count
        except MigctlError:
            sms = None
        name = info.name.removeprefix("NVIDIA ")
        found.append(Parent(ParentDevice(info.uuid, info.index, info.memory_total_mib, sms, name)))
    return found


def chosen_parents(backend: Backend, named: str | None) -> list[Parent]:
    """The parents to try: the one ``--parent`` names (index, GPU- or MIG- UUID), or all."""
    found = soft_parents(backend)
    if named is None:
        return found
    wanted = resolve_parent(named, [p.device for p in found])
    return [p for p in found if p.uuid == wanted.uuid]


def start_daemon(host: MpsHost, parent: ParentDevice) -> bool:
    """Make the parent's MPS control daemon run; True when it was (re)started."""
    control = host.control(parent)
    host.claim(control.paths)
    restarted = control.ensure_running(compute_mode=host.compute_mode)
    if restarted:
        log.info("MPS control daemon of %s started", parent.label())
    return restarted


def stop_if_idle(store: LeaseStore | None, host: MpsHost, parent_uuid: str) -> bool:
    """Stop the parent's MPS daemon when no soft lease and no layout share needs it and no
    client is attached; True when it was stopped."""
    control = host.control(parent_uuid)
    with control.lifecycle():
        if store is not None:
            ledger = store.soft_ledger()
            if ledger.on_parent(parent_uuid) or ledger.slots_of(parent_uuid):
                return False
        try:
            return control.stop()
        except InUseError as busy:
            log.info("MPS control daemon of %s left running: %s", parent_uuid, busy.message)
        except MigctlError as error:
            log.warning("MPS control daemon of %s could not be stopped: %s", parent_uuid, error)
    return False
