"""What an apply or a MIG mode change tells the user when it does not finish, said once.

Why this exists: ``mode enable``, ``apply``, ``split`` and ``recover`` (on this host or through
the daemon) report the same two endings. A failed apply: the error is raised once (``error:``),
and the report above it says only whether the rollback restored the state (and the original
failure when the rollback failed too, since the raised error is then the rollback's). A MIG
mode change that waits: the reason per GPU, and the fix, which depends on why:
processes hold the GPU (stop them: the message names them), or the GPU cannot be reset here at
all, as in a pass-through VM (reboot). The reasons are the backend's words
(``NvmlBackend.pending_reason``), which travel unchanged through the daemon's job results.
The reports of ``plan`` and ``apply`` (``report_plan``, ``report_apply``, ``raise_for``) live
here too, the same for a node here or the daemon's. Imported by the CLI verb modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import InvalidStateError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.reports import ApplyOutcome, PlanReport
    from migctl.schemas.reports import ApplyResultOut, PlanReportOut


def rollback_line(console: Console, failure: str, rollback_failed: object) -> None:
    """After a failed apply: the rollback's result (the failure itself is raised afterwards)."""
    from rich.markup import escape

    if not rollback_failed:
        console.print("rollback: the state before the apply was restored")
        return
    console.print(f"[red]failed:[/red] {escape(failure)}")
    console.print(
        "rollback: NOT restored; the journal is kept: `migctl recover` completes the apply, "
        "`migctl recover --rollback` undoes it"
    )


def _fix(reason: str) -> str:
    if "reboot" in reason:
        return "reboot the machine: the change takes effect at the next boot"
    if "processes" in reason:
        return "stop the processes named above (`migctl status` shows them), or reboot"
    return "reboot, or reset the GPU once nothing uses it"


def pending_error(pending: Mapping[int, str | None], what: str) -> InvalidStateError:
    """``what`` (e.g. "MIG mode is not yet enabled") waits on these GPUs, for these reasons."""
    reasons = {gpu: why or "a GPU reset is needed" for gpu, why in sorted(pending.items())}
    detail = "; ".join(f"GPU {gpu}: {why}" for gpu, why in reasons.items())
    fixes = list(dict.fromkeys(_fix(why) for why in reasons.values()))
    return InvalidStateError(
        f"{what} ({detail})",
        hint="; ".join(fixes) + "; then run the command again",
        context={"pending": {str(gpu): why for gpu, why in reasons.items()}},
    )


def report_plan(report: PlanReport) -> None:
    """``migctl plan``: the reasons, then each GPU's operations and slice maps."""
    current = session()

    def render() -> None:
        from migctl.cli.render_plan import print_plans

        note(report.reasons)
        print_plans(current.console, report.plans, report.currents, current.catalog)

    def document() -> PlanReportOut:
        from migctl.schemas.reports import PlanReportOut

        return PlanReportOut.of(report)

    emit("Plan", document, render)


def report_apply(outcome: ApplyOutcome) -> None:
    """An apply's outcome: per GPU what was done or waits, and the rollback after a failure."""
    current = session()

    def render() -> None:
        note(outcome.reasons)
        if outcome.recovered:
            current.console.print(f"[yellow]found:[/yellow] {outcome.recovered}")
        if outcome.noop:
            current.console.print("the machine already matches the layout: nothing to do")
            return
        if outcome.dry_run:
            from migctl.cli.render_plan import print_plans

            current.console.print("[bold]dry run[/bold]: nothing was changed")
            plans, currents = outcome.plans, outcome.currents
            print_plans(current.console, plans, currents, current.catalog, outcome.disturbs)
            return
        for gpu, done in sorted(outcome.executed.items()):
            current.console.print(
                f"GPU {gpu}: {done} of {len(outcome.plans[gpu].ops)} operation(s) done"
            )
        if outcome.error is not None:
            rollback_line(current.console, outcome.error.message, outcome.rollback_error)

    def document() -> ApplyResultOut:
        from migctl.schemas.reports import ApplyResultOut

        return ApplyResultOut.of_outcome(outcome)

    emit("ApplyResult", document, render)


def raise_for(outcome: ApplyOutcome) -> None:
    if outcome.rollback_error is not None:
        raise outcome.rollback_error
    if outcome.error is not None:
        raise outcome.error
    if outcome.pending:
        gpus = ", ".join(map(str, sorted(outcome.pending)))
        raise pending_error(outcome.pending, f"GPU {gpus}: the layout waits for a MIG mode change")
