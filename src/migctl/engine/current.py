"""Read the machine into the planner's values: what exists now, and what is busy.

Why this exists: the planner decides on ``CurrentGpu`` values; which instances are busy
comes from two places the driver cannot merge for us — processes on MIG devices (NVML)
and active leases (migctl's lease store). An instance that is busy by either must never
be destroyed without ``--force``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migctl.backends.base import Backend
from migctl.model import GpuModel
from migctl.planner import CurrentGpu


@dataclass(frozen=True, slots=True)
class Busy:
    """What holds a MIG device: its PIDs and the lease on it (if any)."""

    pids: tuple[int, ...] = ()
    lease: str | None = None  # "lease 12 (alice, job train)"

    def describe(self) -> str:
        parts = []
        if self.pids:
            parts.append("processes " + ", ".join(map(str, self.pids)))
        if self.lease:
            parts.append(self.lease)
        return " and ".join(parts)


def active_leases(lease_db: Path | None) -> dict[str, str]:
    """Active leases by MIG device UUID, described; empty when no lease store exists (yet).

    A MIG device shared out through MPS is held by its soft leases (``soft lease 7 (...)``).
    """
    from migctl.leases import LeaseStore

    path = lease_db
    if path is None or not path.exists():
        return {}
    found: dict[str, str] = {}
    with LeaseStore(path) as store:
        for lease in store.list_leases(active_only=True):
            kind = "soft lease" if lease.soft else "lease"
            text = f"{kind} {lease.lease_id} ({lease.describe_holder()})"
            key = lease.cuda_device
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def busy_devices(backend: Backend, gpu: int, leases: dict[str, str]) -> dict[tuple[int, int], Busy]:
    """(GI id, CI id) -> what holds it, for every busy MIG device of ``gpu``."""
    busy: dict[tuple[int, int], Busy] = {}
    for device in backend.mig_devices(gpu):
        pids = tuple(p.pid for p in device.processes)
        lease = leases.get(device.uuid)
        if pids or lease:
            busy[(device.gi_id, device.ci_id)] = Busy(pids, lease)
    return busy


def read_current(backend: Backend, gpu: int, leases: dict[str, str]) -> CurrentGpu:
    """The GPU as the planner sees it, busy instances marked."""
    mode = backend.gpu(gpu).mig
    enabled = bool(mode and mode.current)
    if not enabled:
        return CurrentGpu(gpu, (), mig_enabled=False)
    gis = backend.gpu_instances(gpu)
    cis = [ci for gi in gis for ci in backend.compute_instances(gpu, gi.id)]
    busy = busy_devices(backend, gpu, leases)
    return CurrentGpu.from_instances(gpu, gis, cis, busy_cis=busy.keys(), mig_enabled=True)


def machine_models(backend: Backend, gpus: Sequence[int]) -> dict[int, GpuModel]:
    """Each GPU's geometry as the driver reports it (the authority on a real GPU)."""
    return {gpu: backend.live_model(gpu) for gpu in gpus}
