"""``--read-only`` for a node whose GPUs are not opened here (the migctl daemon's).

Why this exists: ``--read-only`` / ``MIGCTL_READ_ONLY=1`` promises that the invocation changes
no GPU. On this host the backend keeps that promise before any driver call; a daemon's GPUs
are opened by the daemon, which knows nothing of this client's flag. :class:`ReadOnlyNode`
wraps such a node: reads, plans, dry runs and plain leases pass through; every change of the
GPUs (MIG mode, instances, apply, recover, a lease that would create a device) is refused
with exit 8 before a request is sent. Only ``cli/session.py`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

from migctl.errors import ReadOnlyError

if TYPE_CHECKING:
    from migctl.backends.base import ModeChange
    from migctl.engine.hooks import Hooks
    from migctl.leases import Lease
    from migctl.model import ComputeInstance, GpuInstance, GpuModel, GpuProfiles
    from migctl.node.protocol import GpuSelection, Node
    from migctl.reports import ApplyOutcome, CheckReport, Inventory, PlanReport, RecoverReport
    from migctl.schemas.layouts import Target
    from migctl.schemas.leases import LeaseRequest


def _refuse(what: str) -> NoReturn:
    raise ReadOnlyError(
        f"--read-only refuses {what}; nothing was sent to the daemon",
        hint="drop --read-only / MIGCTL_READ_ONLY to change the GPUs",
    )


class ReadOnlyNode:
    """``node`` with every change of its GPUs refused (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def description(self) -> str:
        return self.node.description

    def close(self) -> None:
        self.node.close()

    def __enter__(self) -> ReadOnlyNode:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def inventory(self, gpus: GpuSelection = None) -> Inventory:
        return self.node.inventory(gpus)

    def profiles(self, gpu: int | str) -> GpuProfiles:
        return self.node.profiles(gpu)

    def models(self, gpus: GpuSelection = None) -> dict[int, GpuModel]:
        return self.node.models(gpus)

    def metrics(self) -> str:
        return self.node.metrics()

    def plan(self, target: Target, *, gpus: GpuSelection = None, force: bool = False) -> PlanReport:
        return self.node.plan(target, gpus=gpus, force=force)

    def apply(
        self,
        target: Target,
        *,
        gpus: GpuSelection = None,
        force: bool = False,
        dry_run: bool = False,
        hooks: Hooks | None = None,
    ) -> ApplyOutcome:
        if not dry_run:
            _refuse("to apply layouts (--dry-run only plans)")
        return self.node.apply(target, gpus=gpus, force=force, dry_run=True, hooks=hooks)

    def check(self, target: Target, *, gpus: GpuSelection = None) -> CheckReport:
        return self.node.check(target, gpus=gpus)

    def export(
        self, *, gpus: GpuSelection = None, format: str = "native", name: str = "exported"
    ) -> str:
        return self.node.export(gpus=gpus, format=format, name=name)

    def recover(self, *, rollback: bool = False) -> RecoverReport:
        _refuse("to recover an interrupted apply")

    def set_mode(
        self, gpus: GpuSelection, *, enabled: bool, force: bool = False
    ) -> list[ModeChange]:
        _refuse("MIG mode changes")

    def create_gpu_instances(
        self, gpu: int | str, profiles: str, *, with_ci: bool = False
    ) -> list[GpuInstance]:
        _refuse("to create GPU instances")

    def destroy_gpu_instances(self, gpu: int | str, ids: Sequence[int] | None) -> list[int]:
        _refuse("to destroy GPU instances")

    def create_compute_instances(
        self, gpu: int | str, gi: int, profiles: str | None = None
    ) -> list[ComputeInstance]:
        _refuse("to create compute instances")

    def destroy_compute_instances(
        self, gpu: int | str, gi: int, ids: Sequence[int] | None
    ) -> list[int]:
        _refuse("to destroy compute instances")

    def acquire(self, request: LeaseRequest) -> Lease:
        if request.create:
            _refuse("--create (it would create a MIG device)")
        return self.node.acquire(request)

    def release(self, target: int | str, *, admin: bool = False) -> Lease:
        return self.node.release(target, admin=admin)

    def renew(self, target: int | str, ttl_seconds: float | None = None) -> Lease:
        return self.node.renew(target, ttl_seconds)

    def leases(self, *, history: bool = False, mine: bool = False) -> list[Lease]:
        return self.node.leases(history=history, mine=mine)
