"""MIG mode changes of a LocalNode: the one semantics of ``mode enable/disable``.

Why this module exists: the CLI, Python users and the daemon must change MIG mode by one rule.
A selection of every GPU (``None``, ``""`` or ``"all"``) means every MIG-capable GPU: the others
are passed over. GPUs named one by one must all do MIG, else nothing is switched. Every chosen
GPU is checked before the first change; disabling is refused while GPU instances exist (In Use,
exit code 6) unless ``force``, which destroys them as part of the change through one engine apply
to "no instances, MIG off" (checkpoint, journal, roll back on failure; instances with processes
running are still never destroyed). Enabling MIG takes a whole GPU from its soft devices (MPS
shares): refused while one is leased unless ``force``, which ends those leases.
:func:`check_mode` is the MIG check alone: the daemon runs it
before it queues a job, so a refusal is an answer, not a failed job. Only ``migctl.node.local``
and the daemon import this module.
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


def check_mode(
    node: LocalNode, gpus: GpuSelection, *, enabled: bool, force: bool = False
) -> list[int]:
    """The GPUs a mode change would switch, after checking every one (see the module doc)."""
    from migctl.workflow import mode_targets, refuse_disable_with_instances

    chosen = node.select(gpus)
    targets = mode_targets([node.backend.gpu(i) for i in chosen], every_gpu=every_gpu(gpus))
    if not enabled and not force:
        for gpu in targets.gpus:
            refuse_disable_with_instances(node.backend, gpu)
    return targets.gpus


def set_mode(
    node: LocalNode, gpus: GpuSelection, *, enabled: bool, force: bool = False
) -> list[ModeChange]:
    """Switch MIG mode on the chosen GPUs; GPUs that cannot switch now are reported pending."""
    chosen = check_mode(node, gpus, enabled=enabled, force=force)
    if enabled:
        from migctl.node.soft import clear_whole_gpu_shares

        clear_whole_gpu_shares(node.backend, node.soft_store(), node.mps, chosen, force=force)
    if enabled or not force:
        return [node.backend.set_mig_mode(gpu, enabled) for gpu in chosen]
    return _disable_destroying(node, chosen)


def _disable_destroying(node: LocalNode, gpus: Sequence[int]) -> list[ModeChange]:
    """``disable --force``: one engine apply to "no instances, MIG off" with force."""
    from migctl.planner import DesiredLayout
    from migctl.schemas.layouts import InstancesTarget

    target = InstancesTarget.of({gpu: DesiredLayout((), False) for gpu in gpus})
    outcome = node.apply(target, gpus=list(gpus), force=True)
    if outcome.rollback_error is not None:
        raise outcome.rollback_error
    if outcome.error is not None:
        raise outcome.error
    changes = []
    for gpu in gpus:
        mig = node.backend.gpu(gpu).mig
        current, pending = (mig.current, mig.pending) if mig is not None else (False, False)
        changes.append(ModeChange(gpu, False, current, pending, outcome.pending.get(gpu)))
    return changes
