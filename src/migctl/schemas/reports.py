"""What plan, apply, check, recover, set_mode and profiles report, on the wire.

Why this module exists: ``migctl apply -o json``, the daemon's job results and ``RemoteNode``
read the same report; the engine's values (``ApplyOutcome``, ``PlanReport``...) convert to and
from these models only here.
"""

from __future__ import annotations

from pydantic import Field

from migctl.backends.base import ModeChange
from migctl.model import (
    CiProfile,
    CiProfileStatus,
    GiProfile,
    GpuModel,
    GpuProfiles,
    ProfileStatus,
)
from migctl.reports import (
    ApplyOutcome,
    CheckReport,
    InterruptedApply,
    PlanReport,
    RecoverReport,
)
from migctl.schemas.base import Wire
from migctl.schemas.errors import ErrorOut
from migctl.schemas.layouts import CurrentGpuOut, PlanOut


class PlanReportOut(Wire):
    """Plans per GPU (no change made), the state they start from, what they would disturb."""

    reasons: list[str]
    plans: list[PlanOut]
    currents: list[CurrentGpuOut] = Field(default_factory=list)
    disturbs: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per GPU index, each MIG device the plans destroy and who uses it, and "
        "each soft share cut off with its holders",
    )
    soft: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per GPU index, the soft-share steps (MPS daemons, shares) in words",
    )

    @classmethod
    def of(cls, report: PlanReport) -> PlanReportOut:
        return cls(
            reasons=list(report.reasons),
            plans=[PlanOut.of(p) for _, p in sorted(report.plans.items())],
            currents=[CurrentGpuOut.of(c) for _, c in sorted(report.currents.items())],
            disturbs={str(g): lines for g, lines in sorted(report.disturbs.items())},
            soft={str(g): lines for g, lines in sorted(report.soft.items())},
        )

    def value(self) -> PlanReport:
        return PlanReport(
            plans={p.gpu: p.value() for p in self.plans},
            currents={c.gpu: c.value() for c in self.currents},
            reasons=tuple(self.reasons),
            disturbs={int(g): list(lines) for g, lines in self.disturbs.items()},
            soft={int(g): list(lines) for g, lines in self.soft.items()},
        )


class ApplyResultOut(PlanReportOut):
    """An apply's outcome: what was done, what waits, and any failure and rollback."""

    dry_run: bool
    noop: bool
    executed: dict[str, int] = Field(description="per GPU, operations done")
    pending: dict[str, str] = Field(description="per GPU, why its MIG mode change waits")
    recovered: str | None = Field(description="an interrupted apply found and repaired")
    error: ErrorOut | None
    rolled_back: bool
    rollback_error: ErrorOut | None
    soft_done: int = Field(0, description="soft-share steps carried out")

    @classmethod
    def of_outcome(cls, outcome: ApplyOutcome) -> ApplyResultOut:
        base = PlanReportOut.of(outcome.report).model_dump()
        return cls.model_validate(
            {
                **base,
                "dry_run": outcome.dry_run,
                "noop": outcome.noop,
                "executed": {str(k): v for k, v in sorted(outcome.executed.items())},
                "pending": {str(k): v for k, v in sorted(outcome.pending.items())},
                "recovered": outcome.recovered,
                "error": None if outcome.error is None else ErrorOut.of(outcome.error),
                "rolled_back": outcome.rolled_back,
                "rollback_error": None
                if outcome.rollback_error is None
                else ErrorOut.of(outcome.rollback_error),
                "soft_done": outcome.soft_done,
            }
        )

    def outcome(self) -> ApplyOutcome:
        report = self.value()
        return ApplyOutcome(
            plans=report.plans,
            dry_run=self.dry_run,
            executed={int(k): v for k, v in self.executed.items()},
            pending={int(k): v for k, v in self.pending.items()},
            recovered=self.recovered,
            error=None if self.error is None else self.error.to_error(),
            rolled_back=self.rolled_back,
            rollback_error=None if self.rollback_error is None else self.rollback_error.to_error(),
            disturbs=report.disturbs,
            currents=report.currents,
            reasons=report.reasons,
            soft=report.soft,
            soft_done=self.soft_done,
        )


class CheckReportOut(Wire):
    """``assert``: whether every GPU matches, and per GPU the differences in words."""

    matches: bool
    differences: dict[str, list[str]]
    notes: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, report: CheckReport) -> CheckReportOut:
        return cls(
            matches=report.matches,
            differences={str(g): lines for g, lines in sorted(report.differences.items())},
            notes=list(report.notes),
        )

    def value(self) -> CheckReport:
        differences = {int(g): list(lines) for g, lines in self.differences.items()}
        return CheckReport(differences, tuple(self.notes))


class ModeChangeOut(Wire):
    gpu: int
    requested: str = Field(description="enabled or disabled")
    current: bool
    pending: bool
    done: bool
    reason: str | None

    @classmethod
    def of(cls, change: ModeChange) -> ModeChangeOut:
        return cls(
            gpu=change.gpu_index,
            requested="enabled" if change.enabled else "disabled",
            current=change.current,
            pending=change.pending,
            done=change.done,
            reason=change.reason,
        )

    def value(self) -> ModeChange:
        enabled = self.requested == "enabled"
        return ModeChange(self.gpu, enabled, self.current, self.pending, self.reason)


class ModeChangesOut(Wire):
    changes: list[ModeChangeOut]


class GiProfileStatusOut(Wire):
    profile: GiProfile
    free: int
    total: int


class CiProfileStatusOut(Wire):
    gi_id: int
    profile: CiProfile
    free: int
    total: int


class GpuProfilesOut(Wire):
    """One GPU's live geometry, GI profiles free/total, and each GI's CI profiles."""

    gpu_index: int
    model: GpuModel
    gi_profiles: list[GiProfileStatusOut]
    ci_profiles: list[CiProfileStatusOut]

    @classmethod
    def of(cls, found: GpuProfiles) -> GpuProfilesOut:
        return cls(
            gpu_index=found.gpu_index,
            model=found.model,
            gi_profiles=[
                GiProfileStatusOut(profile=s.profile, free=s.free, total=s.total)
                for s in found.gi_profiles
            ],
            ci_profiles=[
                CiProfileStatusOut(gi_id=gi, profile=s.profile, free=s.free, total=s.total)
                for gi, statuses in sorted(found.ci_profiles.items())
                for s in statuses
            ],
        )

    def value(self) -> GpuProfiles:
        cis: dict[int, list[CiProfileStatus]] = {}
        for s in self.ci_profiles:
            cis.setdefault(s.gi_id, []).append(
                CiProfileStatus(self.gpu_index, s.gi_id, s.profile, s.free, s.total)
            )
        return GpuProfiles(
            self.gpu_index,
            self.model,
            [ProfileStatus(self.gpu_index, s.profile, s.free, s.total) for s in self.gi_profiles],
            cis,
        )


class InterruptedApplyOut(Wire):
    started_at: str
    pid: int
    done: int
    total: int
    machine: str = Field("", description="the machine whose journal it is")


class RecoverReportOut(Wire):
    """``recover``: the interrupted apply found (if any) and the apply that repaired it."""

    mode: str = Field(description="complete, rollback or nothing")
    found: InterruptedApplyOut | None
    outcome: ApplyResultOut | None

    @classmethod
    def of(cls, report: RecoverReport) -> RecoverReportOut:
        found = report.found
        return cls(
            mode=report.mode,
            found=None
            if found is None
            else InterruptedApplyOut(
                started_at=found.started_at,
                pid=found.pid,
                done=found.done,
                total=found.total,
                machine=found.machine,
            ),
            outcome=None if report.outcome is None else ApplyResultOut.of_outcome(report.outcome),
        )

    def value(self) -> RecoverReport:
        found = self.found
        return RecoverReport(
            self.mode,
            None
            if found is None
            else InterruptedApply(
                found.started_at, found.pid, found.done, found.total, found.machine
            ),
            None if self.outcome is None else self.outcome.outcome(),
        )
