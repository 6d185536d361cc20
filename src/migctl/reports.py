"""What a node reports: the inventory, a plan, an apply's outcome, a check, a recovery.

Why this module exists: ``Node.inventory``, ``plan``, ``apply``, ``check`` and ``recover``
return these values whether the work was done here or by a daemon (``migctl.schemas`` carries
them across); the CLI renders them. Values only: imports model, planner and lease values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # values only: ``migctl list`` must not pay for the planner and lease store
    from migctl.errors import MigctlError
    from migctl.leases.types import Lease
    from migctl.model import GpuView
    from migctl.planner import CurrentGpu, Plan

SOFT_ISOLATION_NOTE = (
    "soft devices share their parent through CUDA MPS: no fault isolation (a fatal fault in "
    "one client ends every client of the parent's MPS server) and no memory-bandwidth "
    "isolation; MPS serves one Unix user per parent at a time"
)


@dataclass(frozen=True, slots=True)
class SoftDeviceView:
    """A soft device as it stands: its parent, share, memory limit, holder and MPS server.

    ``from_layout``: a layout made it (it stays when released); else a lease made it and it
    ends with the lease. ``server``: the parent's MPS control daemon (running, stopped,
    stale). ``isolation`` is always ``soft``: see :data:`SOFT_ISOLATION_NOTE`.
    """

    uuid: str
    parent_uuid: str
    gpu_index: int
    parent_name: str
    percent: int
    memory_limit_mib: int
    sm_count: int | None
    lease: Lease | None
    server: str
    from_layout: bool
    isolation: str = "soft"


@dataclass(frozen=True)
class Inventory:
    """The chosen GPUs with everything on them, the active leases the caller may see, and the
    soft devices (MPS shares) of those GPUs."""

    description: str
    gpus: list[GpuView]
    leases: list[Lease] = field(default_factory=list)
    soft: list[SoftDeviceView] = field(default_factory=list)

    @property
    def holders(self) -> dict[str, Lease]:
        """Active leases by MIG device UUID."""
        return {lease.uuid: lease for lease in self.leases if lease.active}

    def gpu(self, index: int) -> GpuView | None:
        return next((view for view in self.gpus if view.info.index == index), None)


@dataclass(frozen=True)
class PlanReport:
    """Plans per GPU (nothing changed), the state each starts from, and who they'd disturb.

    ``soft``: per GPU, the soft-share steps (MPS daemons and shares created or removed), in
    words; their holders cut off are in ``disturbs`` too.
    """

    plans: dict[int, Plan]
    currents: dict[int, CurrentGpu] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()  # how an intent was turned into layouts
    disturbs: dict[int, list[str]] = field(default_factory=dict)
    soft: dict[int, list[str]] = field(default_factory=dict)

    @property
    def noop(self) -> bool:
        return all(p.is_noop for p in self.plans.values()) and not any(self.soft.values())


@dataclass
class ApplyOutcome:
    """An apply: its plans, what was done, what waits for a reset, failures and rollback."""

    plans: dict[int, Plan]
    dry_run: bool = False
    executed: dict[int, int] = field(default_factory=dict)  # gpu -> operations done
    pending: dict[int, str] = field(default_factory=dict)  # gpu -> why MIG mode waits
    recovered: str | None = None  # an interrupted apply found and repaired
    error: MigctlError | None = None  # the failure that caused a rollback
    rolled_back: bool = False
    rollback_error: MigctlError | None = None
    # dry run only: per GPU, each MIG device the plan destroys and who uses it
    disturbs: dict[int, list[str]] = field(default_factory=dict)
    currents: dict[int, CurrentGpu] = field(default_factory=dict)  # the state planned from
    reasons: tuple[str, ...] = ()
    soft: dict[int, list[str]] = field(default_factory=dict)  # soft-share steps, in words
    soft_done: int = 0  # soft-share steps carried out

    @property
    def changed(self) -> bool:
        """MIG devices changed (soft shares alone leave them: see ``soft_done``)."""
        return any(self.executed.values())

    @property
    def noop(self) -> bool:
        return all(p.is_noop for p in self.plans.values()) and not any(self.soft.values())

    @property
    def failure(self) -> MigctlError | None:
        """The error to report: a failed rollback first, else the failure."""
        return self.rollback_error or self.error

    @property
    def report(self) -> PlanReport:
        return PlanReport(self.plans, self.currents, self.reasons, self.disturbs, self.soft)


@dataclass(frozen=True)
class CheckReport:
    """Per GPU, the differences between the machine and a layout (empty: it matches)."""

    differences: dict[int, list[str]]
    notes: tuple[str, ...] = ()  # what the target names that was not compared

    @property
    def matches(self) -> bool:
        """Every GPU compared matches (and at least one was compared)."""
        return bool(self.differences) and not any(self.differences.values())


@dataclass(frozen=True)
class InterruptedApply:
    """An apply that a crash interrupted, as its journal tells it."""

    started_at: str
    pid: int
    done: int
    total: int
    machine: str = ""  # the machine the journal belongs to (``sim-NAME``, or the real GPUs')


@dataclass(frozen=True)
class RecoverReport:
    """``recover``: what was found, and the apply that completed or rolled it back."""

    mode: str  # "complete" | "rollback" | "nothing"
    found: InterruptedApply | None
    outcome: ApplyOutcome | None = None
