"""What an apply or a MIG mode change tells the user when it does not finish, said once.

Why this exists: ``mode enable``, ``apply``, ``split`` and ``recover`` (locally and through the
daemon) report the same two endings. A failed apply: the error is raised once (``error:``),
and the report above it says only whether the rollback restored the state (and the original
failure when the rollback failed too, since the raised error is then the rollback's). A MIG
mode change that waits: the reason per GPU, and the fix, which depends on why:
processes hold the GPU (stop them: the message names them), or the GPU cannot be reset here at
all, as in a pass-through VM (reboot). The reasons are the backend's words
(``NvmlBackend.pending_reason``), which travel unchanged through the daemon's job results.
Imported by the CLI verb modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from migctl.errors import InvalidStateError

if TYPE_CHECKING:
    from rich.console import Console


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
        return (
            "reboot the machine: this GPU cannot be reset here (e.g. a pass-through VM), so the "
            "change takes effect at the next boot"
        )
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
