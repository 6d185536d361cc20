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


@dataclass(frozen=True)
class Inventory:
    """The chosen GPUs with everything on them, and the active leases the caller may see."""

    description: str
    gpus: list[GpuView]
    leases: list[Lease] = field(default_factory=list)

    @property
    def holders(self) -> dict[str, Lease]:
        """Active leases by MIG device UUID."""
        return {lease.uuid: lease for lease in self.leases if lease.active}

    def gpu(self, index: int) -> GpuView | None:
        return next((view for view in self.gpus if view.info.index == index), None)


@dataclass(frozen=True)
class PlanReport:
    """Plans per GPU (nothing changed), the state each starts from, and who they'd disturb."""

    plans: dict[int, Plan]
    currents: dict[int, CurrentGpu] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()  # how an intent was turned into layouts
    disturbs: dict[int, list[str]] = field(default_factory=dict)

    @property
    def noop(self) -> bool:
        return all(p.is_noop for p in self.plans.values())


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

    @property
    def changed(self) -> bool:
        return any(self.executed.values())

    @property
    def noop(self) -> bool:
        return all(p.is_noop for p in self.plans.values())

    @property
    def failure(self) -> MigctlError | None:
        """The error to report: a failed rollback first, else the failure."""
        return self.rollback_error or self.error

    @property
    def report(self) -> PlanReport:
        return PlanReport(self.plans, self.currents, self.reasons, self.disturbs)


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
