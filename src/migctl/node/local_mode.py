"""MIG mode on a :class:`~migctl.node.local.LocalNode`: one semantics for the CLI and the daemon.

Why this module exists: ``migctl mode enable|disable`` and the daemon's ``/v1/mig-mode`` must
mean the same. A selection of every GPU (``None`` or ``"all"``) means every MIG-capable GPU (the
others are passed over); GPUs named one by one must all support MIG, else nothing is switched.
Disabling is refused while GPU instances exist, unless ``force``: then the instances are
destroyed by one apply to "no instances, MIG off" (checkpoint, journal, roll back on failure;
busy instances are destroyed only because ``force`` says so, and the driver still refuses a
compute instance with processes). Only ``node.local`` imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from migctl.backends.base import ModeChange

if TYPE_CHECKING:
    from migctl.node.local import LocalNode
    from migctl.node.protocol import GpuSelection


def every_gpu(gpus: GpuSelection) -> bool:
    """Whether a selection means the whole machine (``None``, ``""`` or ``"all"``)."""
    return gpus is None or (isinstance(gpus, str) and gpus.strip().lower() in {"", "all"})


def set_mode(node: LocalNode, gpus: GpuSelection, enabled: bool, force: bool) -> list[ModeChange]:
    """Switch MIG mode on the GPUs ``gpus`` selects (see the module docstring)."""
    from migctl.workflow import mode_targets, set_mode

    backend = node.backend
    chosen = node.select(gpus)
    targets = mode_targets([backend.gpu(i) for i in chosen], every_gpu=every_gpu(gpus))
    if not enabled and force:
        return _disable_destroying(node, targets.gpus)
    return set_mode(backend, targets.gpus, enabled)


def _disable_destroying(node: LocalNode, gpus: Sequence[int]) -> list[ModeChange]:
    from migctl.planner import DesiredLayout
    from migctl.schemas.layouts import InstancesTarget

    target = InstancesTarget.of({g: DesiredLayout((), False) for g in gpus})
    outcome = node.apply(target, gpus=list(gpus), force=True)
    if outcome.failure is not None:
        raise outcome.failure
    changes = []
    for index in gpus:
        mig = node.backend.gpu(index).mig
        current, pending = (mig.current, mig.pending) if mig is not None else (False, False)
        changes.append(ModeChange(index, False, current, pending, outcome.pending.get(index)))
    return changes
