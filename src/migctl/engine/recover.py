"""Repair an apply that was interrupted: finish it, or restore its checkpoint.

Why this exists: a process killed mid-apply leaves a journal. ``migctl recover`` (or
the next ``migctl apply``) reads it; by default it completes the interrupted apply's
target from whatever is there now, with ``rollback`` it restores the state from before
the first change. Either way busy instances are never destroyed.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.engine.apply import ApplyOutcome, apply, journal_for
from migctl.engine.codec import targets_from_dict
from migctl.engine.hooks import Hooks
from migctl.engine.journal import Journal, JournalEntry


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
) -> RecoverOutcome:
    journal = journal or journal_for(backend)
    entry = journal.read()
    if entry is None:
        return RecoverOutcome(None, "nothing", None)
    raw = entry.checkpoint if rollback else entry.target
    outcome = apply(backend, targets_from_dict(raw), hooks=hooks, journal=journal)
    return RecoverOutcome(entry, "rollback" if rollback else "complete", outcome)
