"""Repair an apply that was interrupted: finish it, or restore its checkpoint.

Why this exists: a process killed mid-apply leaves a journal. ``migctl recover`` (or
the next ``migctl apply``) reads it; by default it completes the interrupted apply's
target from whatever is there now, with ``rollback`` it restores the state from before
the first change. Either way busy instances are never destroyed. A journal that names GPUs this
machine lacks, or a layout that cannot be planned here, is refused naming the journal file.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.engine.apply import apply, journal_for
from migctl.engine.codec import targets_from_dict
from migctl.engine.files import MachineFiles
from migctl.engine.hooks import Hooks
from migctl.engine.journal import Journal, JournalEntry
from migctl.errors import MigctlError
from migctl.reports import ApplyOutcome


@dataclass
class RecoverOutcome:
    found: JournalEntry | None
    mode: str  # "complete" | "rollback" | "nothing"
    outcome: ApplyOutcome | None


def recover(
    backend: Backend,
    *,
    rollback: bool = False,
    hooks: Hooks | None = None,
    journal: Journal | None = None,
    files: MachineFiles | None = None,
) -> RecoverOutcome:
    files = MachineFiles.of(backend, files)
    journal = journal or journal_for(backend, files)
    entry = journal.read()
    if entry is None:
        return RecoverOutcome(None, "nothing", None)
    targets = targets_from_dict(entry.checkpoint if rollback else entry.target)
    present = {gpu.index for gpu in backend.gpus()}
    missing = sorted(set(targets) - present)
    if missing:
        gpus = ", ".join(map(str, missing))
        raise journal.refusal(
            f"names GPU {gpus}, which this machine does not have (its GPUs: "
            f"{', '.join(map(str, sorted(present)))}): it was written for another machine "
            "or is damaged"
        )
    try:
        outcome = apply(backend, targets, hooks=hooks, journal=journal, files=files)
    except MigctlError as error:  # the journal's layout cannot be planned: say where it is
        error.message = f"the apply journal {journal.path}: {error.message}"
        error.args = (error.message,)
        raise
    return RecoverOutcome(entry, "rollback" if rollback else "complete", outcome)
