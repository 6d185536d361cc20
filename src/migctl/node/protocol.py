"""The Node protocol: everything a front end may ask of one machine.

Why this module exists: the CLI, the daemon's routes, Python users and the fleet controller are
written against this protocol, so that a ``LocalNode`` (this host) and a ``RemoteNode`` (a daemon)
are interchangeable and a verb never has a second implementation. Results are migctl's value
types; failures are :mod:`migctl.errors` classes (the same class and exit code either way).

Selections of GPUs (``gpus``) are ``None`` or ``"all"`` (every GPU), a comma list of indexes,
GPU UUIDs or PCI bus ids (``"0,1"``), or a sequence of indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from types import TracebackType

    from migctl.backends.base import ModeChange
    from migctl.engine.hooks import Hooks
    from migctl.leases import Lease
    from migctl.model import ComputeInstance, GpuInstance, GpuModel, GpuProfiles
    from migctl.reports import ApplyOutcome, CheckReport, Inventory, PlanReport, RecoverReport
    from migctl.schemas.layouts import Target
    from migctl.schemas.leases import LeaseRequest

GpuSelection = str | Sequence[int] | None


@runtime_checkable
class Node(Protocol):
    """One machine: its GPUs, MIG layouts and leases (see the module docstring)."""

    @property
    def description(self) -> str:
        """What this node is: ``simulated dgx-h100 (...)``, ``NVML ...``, ``the daemon at ...``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Node: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    # -- reading ---------------------------------------------------------------------------

    def inventory(self, gpus: GpuSelection = None) -> Inventory:
        """The chosen GPUs with instances, MIG devices, processes, and the active leases."""
        ...

    def profiles(self, gpu: int | str) -> GpuProfiles:
        """One GPU's live geometry, GI profiles free/total, each GI's CI profiles."""
        ...

    def models(self, gpus: GpuSelection = None) -> dict[int, GpuModel]:
        """The live MIG geometry of the chosen GPUs that can do MIG."""
        ...

    def metrics(self) -> str:
        """The machine in Prometheus text format."""
        ...

    # -- layouts ---------------------------------------------------------------------------

    def plan(self, target: Target, *, gpus: GpuSelection = None, force: bool = False) -> PlanReport:
        """The plans that would reach ``target`` on the chosen GPUs; nothing changes."""
        ...

    def apply(
        self,
        target: Target,
        *,
        gpus: GpuSelection = None,
        force: bool = False,
        dry_run: bool = False,
        hooks: Hooks | None = None,
    ) -> ApplyOutcome:
        """Make the GPUs match ``target``: checkpoint, change, verify, roll back on failure.

        ``hooks`` run around the change on this host; a daemon refuses them."""
        ...

    def check(self, target: Target, *, gpus: GpuSelection = None) -> CheckReport:
        """Whether the GPUs match ``target``, and the differences in words."""
        ...

    def export(
        self, *, gpus: GpuSelection = None, format: str = "native", name: str = "exported"
    ) -> str:
        """The current layout as a layout file (``native`` or ``mig-parted``)."""
        ...

    def recover(self, *, rollback: bool = False) -> RecoverReport:
        """Finish (or roll back) an apply that was interrupted."""
        ...

    def set_mode(
        self, gpus: GpuSelection, *, enabled: bool, force: bool = False
    ) -> list[ModeChange]:
        """MIG mode on the chosen GPUs; disabling refuses while instances exist (unless force)."""
        ...

    # -- instances (nvidia-smi mig -cgi / -dgi / -cci / -dci) ------------------------------

    def create_gpu_instances(
        self, gpu: int | str, profiles: str, *, with_ci: bool = False
    ) -> list[GpuInstance]:
        """GIs from ``"9,19,19"`` / ``"3g.40gb:4,1g.10gb"``, placed together, all or nothing."""
        ...

    def destroy_gpu_instances(self, gpu: int | str, ids: Sequence[int] | None) -> list[int]:
        """Destroy GIs (all when ``ids`` is None), compute instances first; never a busy one."""
        ...

    def create_compute_instances(
        self, gpu: int | str, gi: int, profiles: str | None = None
    ) -> list[ComputeInstance]:
        """CIs inside GI ``gi`` (default: one spanning it)."""
        ...

    def destroy_compute_instances(
        self, gpu: int | str, gi: int, ids: Sequence[int] | None
    ) -> list[int]:
        """Destroy CIs of GI ``gi`` (all when ``ids`` is None); never a busy one."""
        ...

    # -- leases ----------------------------------------------------------------------------

    def acquire(self, request: LeaseRequest) -> Lease:
        """Lease the smallest free MIG device that meets ``request``."""
        ...

    def release(self, target: int | str, *, admin: bool = False) -> Lease:
        """End a lease (by id or MIG device UUID): the caller's own; another user's only with
        ``admin`` (and the right to: root here, the admin role on a daemon), as ``revoked``."""
        ...

    def renew(self, target: int | str, ttl_seconds: float | None = None) -> Lease:
        """Push a lease's expiry to now + its TTL (or ``ttl_seconds``)."""
        ...

    def leases(self, *, history: bool = False, mine: bool = False) -> list[Lease]:
        """Active leases (``history``: ended ones too; ``mine``: the caller's only)."""
        ...
