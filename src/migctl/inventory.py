"""A consistent picture of the machine: GPUs, their instances, MIG devices and processes.

Why this exists: ``migctl list``, ``status``, ``top``, metrics and the service all show
"what is on each GPU and who uses it". This module reads it once through the backend and
joins the pieces (GI -> CIs -> MIG device -> processes -> user), so every view agrees.
Read-only; never changes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from migctl.backends.base import Backend
from migctl.errors import NotFoundError, UsageError
from migctl.host import process_facts
from migctl.model import (
    GpuInfo,
    GpuProcess,
    GpuProfiles,
    GpuView,
    InstanceView,
    ProcessView,
)

__all__ = [
    "GpuProfiles",
    "GpuView",
    "InstanceView",
    "ProcessView",
    "gpu_view",
    "machine_view",
    "process_views",
    "resolve_gpus",
    "select_gpus",
]


def resolve_gpus(backend: Backend, selection: str | None) -> list[int]:
    """``None``/``"all"`` -> every GPU; else a comma list of indexes, UUIDs or PCI bus ids."""
    return select_gpus(backend.gpus(), selection)


def select_gpus(gpus: Sequence[GpuInfo], selection: str | None) -> list[int]:
    """:func:`resolve_gpus` over GPUs already read (e.g. from the daemon's inventory)."""
    if selection is None or selection.strip().lower() in {"", "all"}:
        return [g.index for g in gpus]
    chosen: list[int] = []
    for token in (t.strip() for t in selection.split(",")):
        if not token:
            raise UsageError(f"empty GPU in {selection!r}", hint="use e.g. -i 0,1 or -i all")
        chosen.append(_match_gpu(gpus, token))
    return sorted(set(chosen))


def _match_gpu(gpus: Sequence[GpuInfo], token: str) -> int:
    if token.isdigit():
        index = int(token)
        if any(g.index == index for g in gpus):
            return index
    else:
        for gpu in gpus:
            if token.lower() in {gpu.uuid.lower(), gpu.pci_bus_id.lower()}:
                return gpu.index
            if gpu.pci_bus_id.lower().endswith(token.lower()) and ":" in token:
                return gpu.index
    known = ", ".join(str(g.index) for g in gpus) or "none"
    raise NotFoundError(
        f"no GPU {token!r} on this machine",
        hint=f"GPUs: {known} (an index, a GPU UUID or a PCI bus id)",
        context={"gpu": token},
    )


def process_views(processes: Iterable[GpuProcess]) -> tuple[ProcessView, ...]:
    """GPU processes with their users and commands (from /proc; unknown becomes None)."""
    views = []
    for proc in processes:
        facts = process_facts(proc.pid)
        views.append(
            ProcessView(
                proc.pid, proc.used_memory_mib, proc.gi_id, proc.ci_id, facts.user, facts.command
            )
        )
    return tuple(views)


def gpu_view(backend: Backend, index: int) -> GpuView:
    info = backend.gpu(index)
    known = backend.catalog_model(index)
    processes = process_views(backend.processes(index))
    if info.mig is None:
        return GpuView(info, known, None, (), processes)
    slices = backend.live_model(index).memory_slices
    if not info.mig.current:
        return GpuView(info, known, slices, (), processes)
    devices = backend.mig_devices(index)
    instances = tuple(
        InstanceView(
            gi,
            tuple(backend.compute_instances(index, gi.id)),
            tuple(d for d in devices if d.gi_id == gi.id),
        )
        for gi in backend.gpu_instances(index)
    )
    return GpuView(info, known, slices, instances, processes)


def machine_view(backend: Backend, indices: Sequence[int] | None = None) -> list[GpuView]:
    chosen = indices if indices is not None else [g.index for g in backend.gpus()]
    return [gpu_view(backend, i) for i in chosen]
