"""What an apply or a MIG mode change tells the user when it does not finish, said once.

Why this exists: ``mode enable``, ``apply``, ``split`` and ``recover`` (locally and through the
daemon) report the same two endings. A failed apply: the error is raised once (``error:``),
and the report above it says only whether the rollback restored the state (and the original
failure when the rollback failed too, since the raised error is then the rollback's). A MIG
mode change that waits: the reason per GPU, and the fix, which depends on why:
processes hold the GPU (stop them: the message names them), or the GPU cannot be reset here at
all, as in a pass-through VM (reboot). The reasons are the backend's words
(``NvmlBackend.pending_reason``), which travel unchanged through the daemon's job results.
The local apply's report (``report_apply``, ``after_change``, ``raise_for``) lives here too; the
daemon's form is in ``cli/remote_layouts.py``. Imported by the CLI verb modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import InvalidStateError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.reports import ApplyOutcome


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


def report_apply(outcome: ApplyOutcome, reasons: tuple[str, ...]) -> None:
    """A local apply's outcome: per GPU what was done or waits, and the rollback after a failure."""
    current = session()

    def render() -> None:
        note(reasons)
        if outcome.recovered:
            current.console.print(f"[yellow]found:[/yellow] {outcome.recovered}")
        if outcome.dry_run or outcome.noop:
            from migctl.cli.render_plan import print_plans
            from migctl.engine.current import read_current

            currents = {g: read_current(current.backend, g, {}) for g in outcome.plans}
            models = {g: current.backend.live_model(g) for g in outcome.plans}
            if outcome.noop:
                current.console.print("the machine already matches the layout: nothing to do")
            else:
                current.console.print("[bold]dry run[/bold]: nothing was changed")
                print_plans(current.console, outcome.plans, currents, models, outcome.disturbs)
            return
        for gpu, done in sorted(outcome.executed.items()):
            current.console.print(
                f"GPU {gpu}: {done} of {len(outcome.plans[gpu].ops)} operation(s) done"
            )
        if outcome.error is not None:
            rollback_line(current.console, outcome.error.message, outcome.rollback_error)

    from migctl.schemas.reports import ApplyResultOut

    emit("ApplyResult", ApplyResultOut.of_outcome(outcome).model_dump(mode="json"), render)


def after_change(outcome: ApplyOutcome) -> None:
    """Keep what depends on the MIG devices current: the CDI spec."""
    if outcome.changed or outcome.rolled_back:
        path = session().refresh_cdi()
        if path is not None and not session().json:
            session().err.print(f"refreshed the CDI spec {path}")


def raise_for(outcome: ApplyOutcome) -> None:
    if outcome.rollback_error is not None:
        raise outcome.rollback_error
    if outcome.error is not None:
        raise outcome.error
    if outcome.pending:
        gpus = ", ".join(map(str, sorted(outcome.pending)))
        raise pending_error(outcome.pending, f"GPU {gpus}: the layout waits for a MIG mode change")
