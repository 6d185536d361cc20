"""Carry out a plan's operations on the backend, one at a time, recording progress.

Why this exists: a plan names GIs it creates by placement (their ids do not exist yet);
this module maps them to the ids the driver assigns, destroys each compute instance inside
the lease fence (``fence.py``: checked for a lease and destroyed under the lease store's lock,
since a lease may have been granted since planning), and records each finished operation in
the journal so an interruption is always resumable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from migctl.backends.base import Backend
from migctl.engine.fence import DestroyFence
from migctl.errors import InUseError
from migctl.planner import CreateCi, CreateGi, DestroyCi, DestroyGi, Op, SetMigMode

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What the execution of one plan achieved."""

    done: int = 0
    pending_mode: str | None = None  # why a MIG mode change waits for a reset
    created_gis: dict[str, int] = field(default_factory=dict)  # "gpu:start" -> GI id


def _key(gpu: int, start: int) -> str:
    return f"{gpu}:{start}"


class Executor:
    """Runs operations; every compute instance is destroyed inside ``fence``."""

    def __init__(
        self,
        backend: Backend,
        *,
        fence: DestroyFence,
        record: Callable[[Progress], None] | None = None,
        before_instance_change: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.fence = fence
        self.record = record or (lambda progress: None)
        # the apply's before-instance-changes hook (it runs it once, however often called)
        self.before_instance_change = before_instance_change or (lambda: None)

    def run(self, ops: tuple[Op, ...], progress: Progress) -> Progress:
        """Run ``ops`` from ``progress.done`` on; stop early when a mode change is pending."""
        while progress.done < len(ops):
            op = ops[progress.done]
            if not isinstance(op, SetMigMode):
                self.before_instance_change()
            if not self._one(op, progress):
                return progress
            progress.done += 1
            self.record(progress)
        return progress

    def _one(self, op: Op, progress: Progress) -> bool:
        if isinstance(op, SetMigMode):
            change = self.backend.set_mig_mode(op.gpu_index, op.enabled)
            if not change.done:
                progress.pending_mode = change.reason or "a GPU reset is needed"
                return False
        elif isinstance(op, DestroyCi):
            with self.fence.destroying(op.gpu_index, op.gi_id, op.ci_id):
                self.backend.destroy_compute_instance(op.gpu_index, op.gi_id, op.ci_id)
        elif isinstance(op, DestroyGi):
            self.backend.destroy_gpu_instance(op.gpu_index, op.gi_id)
        elif isinstance(op, CreateGi):
            created = self.backend.create_gpu_instance(
                op.gpu_index, op.profile_id or 0, op.placement
            )
            progress.created_gis[_key(op.gpu_index, op.placement.start)] = created.id
        elif isinstance(op, CreateCi):
            gi_id = self._gi_id(op, progress)
            self.backend.create_compute_instance(op.gpu_index, gi_id, op.profile_id, op.placement)
        return True

    def _gi_id(self, op: CreateCi, progress: Progress) -> int:
        if op.gi.gi_id is not None:
            return op.gi.gi_id
        known = progress.created_gis.get(_key(op.gpu_index, op.gi.placement.start))
        if known is not None:
            return known
        for gi in self.backend.gpu_instances(op.gpu_index):  # after a resume
            if gi.placement == op.gi.placement:
                return gi.id
        raise InUseError(
            f"GPU {op.gpu_index}: no GPU instance at {op.gi.placement} to hold {op.profile}"
        )
