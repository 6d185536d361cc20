"""Apply desired layouts to a machine: plan, check, checkpoint, execute, verify, roll back.

Why this exists: this is migctl's promise — change only what must change, never disturb
work in progress, and always be able to undo. The steps:

1. under the apply lock, note an interrupted earlier apply (its journal) and repair it by
   planning from what is there now;
2. plan every GPU (``planner.reconfigure``); run the ``before-apply`` hook (always, as
   mig-parted runs ``apply-start``); when all plans are empty, stop: the layout already holds;
3. write the journal (checkpoint + operations) before the first change;
4. execute GPU by GPU with explicit placements, recording progress (the ``before-mode-change``
   and ``before-instance-changes`` hooks run before the first change of their kind); a GPU
   whose MIG mode change waits for a reset is reported pending with the processes in the way;
5. verify: planning again must give empty plans;
6. on any failure, restore the checkpoint (never touching busy instances) and report both
   the failure and the restore; then clear the journal;
7. the ``after-apply`` hook, whatever happened since ``before-apply`` (``engine/hooks.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from migctl.backends.base import Backend
from migctl.engine.codec import checkpoint_of, desired_to_dict, targets_to_dict
from migctl.engine.current import active_leases, read_current
from migctl.engine.disturb import disturbed
from migctl.engine.execute import Executor, Progress
from migctl.engine.fence import DestroyFence
from migctl.engine.files import MachineFiles
from migctl.engine.hooks import Hooks
from migctl.engine.journal import Journal, JournalEntry, now
from migctl.errors import DriverError, MigctlError
from migctl.host import is_alive
from migctl.planner import CurrentGpu, DesiredLayout, Plan, SetMigMode, reconfigure
from migctl.reports import ApplyOutcome

log = logging.getLogger(__name__)


def machine_id(backend: Backend) -> str:
    """Which machine a journal belongs to: the simulated machine's name, or this host."""
    description = backend.description
    if description.startswith("simulated "):
        return "sim-" + description.split()[1]
    return "host-" + os.uname().nodename


def journal_for(backend: Backend, files: MachineFiles | None = None) -> Journal:
    """The machine's apply journal (a simulated machine's lives in its own directory)."""
    return Journal(machine_id(backend), MachineFiles.of(backend, files).journal_dir())


def plan_machine(
    backend: Backend,
    targets: Mapping[int, DesiredLayout],
    *,
    force: bool = False,
    files: MachineFiles | None = None,
) -> tuple[dict[int, Plan], dict[int, CurrentGpu]]:
    """A plan per GPU from what is there now, and that current state."""
    leases = active_leases(MachineFiles.of(backend, files).lease_db)
    plans: dict[int, Plan] = {}
    currents: dict[int, CurrentGpu] = {}
    for gpu, desired in sorted(targets.items()):
        current = read_current(backend, gpu, leases)
        currents[gpu] = current
        plans[gpu] = reconfigure(backend.live_model(gpu), current, desired, force=force)
    return plans, currents


def _interrupted(journal: Journal) -> str | None:
    entry = journal.read()
    if entry is None:
        return None
    state = "still running" if is_alive(entry.pid, None) and entry.pid != os.getpid() else "dead"
    return (
        f"an apply started {entry.started_at} by PID {entry.pid} ({state}) was interrupted after "
        f"{entry.done} of {len(entry.ops)} operations; repaired by planning from the current state"
    )


def apply(
    backend: Backend,
    targets: Mapping[int, DesiredLayout],
    *,
    force: bool = False,
    dry_run: bool = False,
    hooks: Hooks | None = None,
    journal: Journal | None = None,
    files: MachineFiles | None = None,
) -> ApplyOutcome:
    """Make the machine match ``targets`` (see the module docstring)."""
    hooks = hooks or Hooks()
    files = MachineFiles.of(backend, files)
    journal = journal or journal_for(backend, files)
    if dry_run:
        plans, currents = plan_machine(backend, targets, force=force, files=files)
        return ApplyOutcome(
            plans, dry_run=True, disturbs=disturbed(backend, plans, files), currents=currents
        )
    with journal.locked():
        recovered = _interrupted(journal)
        plans, currents = plan_machine(backend, targets, force=force, files=files)
        outcome = ApplyOutcome(plans, recovered=recovered, currents=currents)
        hooks.run("before-apply", {"plans": [p.to_dict() for p in plans.values()]})
        try:
            _change(
                backend,
                targets,
                outcome,
                currents,
                journal=journal,
                hooks=hooks,
                force=force,
                files=files,
            )
        except BaseException:
            hooks.finish(_outcome_json(outcome), failed=True)
            raise
        hooks.finish(_outcome_json(outcome), failed=outcome.error is not None)
    return outcome


def _change(
    backend: Backend,
    targets: Mapping[int, DesiredLayout],
    outcome: ApplyOutcome,
    currents: dict[int, CurrentGpu],
    *,
    journal: Journal,
    hooks: Hooks,
    force: bool,
    files: MachineFiles,
) -> None:
    """Steps 2-6 of the module docstring, once the plans are known and the lock held."""
    plans = outcome.plans
    if outcome.noop:
        journal.clear()
        return
    entry = JournalEntry(
        machine=journal.machine,
        pid=os.getpid(),
        started_at=now(),
        target=targets_to_dict(dict(targets)),
        checkpoint={str(g): desired_to_dict(checkpoint_of(c)) for g, c in currents.items()},
        ops=[op.to_dict() for p in plans.values() for op in p.ops],
    )
    journal.write(entry)
    try:
        recorder = _Recorder(journal, entry)
        _execute(backend, plans, outcome, recorder, hooks, force=force, files=files)
        _verify(backend, targets, outcome, files)
    except MigctlError as failure:
        outcome.error = failure
        _roll_back(backend, currents, outcome, journal, entry, files=files)
    if outcome.rollback_error is None:
        journal.clear()


@dataclass
class _Once:
    """Calls ``action`` the first time it is called, and never again."""

    action: Callable[[], None]
    done: bool = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self.action()


@dataclass
class _Recorder:
    """Writes each finished operation of the whole machine's plan to the journal."""

    journal: Journal
    entry: JournalEntry
    offset: int = 0

    def __call__(self, progress: Progress) -> None:
        self.entry.done = self.offset + progress.done
        self.entry.created_gis.update(progress.created_gis)
        self.journal.write(self.entry)


def _execute(
    backend: Backend,
    plans: dict[int, Plan],
    outcome: ApplyOutcome,
    recorder: _Recorder,
    hooks: Hooks,
    *,
    force: bool,
    files: MachineFiles,
) -> None:
    payload = {"plans": [p.to_dict() for p in plans.values()]}
    if any(isinstance(op, SetMigMode) for p in plans.values() for op in p.ops):
        hooks.run("before-mode-change", payload)
    first_instance_change = _Once(lambda: hooks.run("before-instance-changes", payload))
    fence = DestroyFence(backend, files.lease_db, force=force)
    try:
        for gpu, plan in sorted(plans.items()):
            executor = Executor(
                backend, fence=fence, record=recorder, before_instance_change=first_instance_change
            )
            progress = executor.run(plan.ops, Progress())
            outcome.executed[gpu] = progress.done
            if progress.pending_mode is not None:
                outcome.pending[gpu] = progress.pending_mode
            recorder.offset += len(plan.ops)
    finally:
        fence.close()


def _verify(
    backend: Backend,
    targets: Mapping[int, DesiredLayout],
    outcome: ApplyOutcome,
    files: MachineFiles,
) -> None:
    settled = {g: t for g, t in targets.items() if g not in outcome.pending}
    plans, _ = plan_machine(backend, settled, force=True, files=files)
    unfinished = [g for g, p in plans.items() if not p.is_noop]
    if unfinished:
        raise DriverError(
            f"after the apply, GPU {', '.join(map(str, unfinished))} does not match the layout",
            hint="the driver did not do what it reported; see `migctl status`",
        )


def _roll_back(
    backend: Backend,
    currents: dict[int, CurrentGpu],
    outcome: ApplyOutcome,
    journal: Journal,
    entry: JournalEntry,
    *,
    files: MachineFiles,
) -> None:
    entry.status = "rolling-back"
    journal.write(entry)
    checkpoint = {g: checkpoint_of(c) for g, c in currents.items()}
    try:
        plans, _ = plan_machine(backend, checkpoint, force=False, files=files)
        fence = DestroyFence(backend, files.lease_db)  # the restore never destroys a leased one
        try:
            for plan in plans.values():
                Executor(backend, fence=fence).run(plan.ops, Progress())
        finally:
            fence.close()
        outcome.rolled_back = True
        # INFO: the caller reports the failure itself (the CLI once, as ``error:``)
        log.info("apply failed (%s); the checkpoint was restored", outcome.error)
    except MigctlError as failure:
        outcome.rollback_error = failure
        log.info(
            "rollback failed: %s; the journal %s is kept for `migctl recover`",
            failure,
            journal.path,
        )


def _outcome_json(outcome: ApplyOutcome) -> dict[str, Any]:
    """The outcome as the ``after-apply`` hook reads it: the CLI's ``apply -o json`` form."""
    from migctl.schemas.reports import ApplyResultOut

    return ApplyResultOut.of_outcome(outcome).model_dump(mode="json")
