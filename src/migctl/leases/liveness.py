"""Is the process that holds a lease still alive? (Linux ``/proc``, same host only.)

Why this module exists: a job killed with SIGKILL cannot release its lease, so the store ends a
lease whose holder is gone. A PID alone is not enough: PIDs are recycled, so the store records
the holder's start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) at acquire and
a process with the same PID but another start time is a different process. Dead tasks (X)
count as dead. A zombie (state Z) has ended too, but while its parent runs it is being wound
up: ``migctl run`` releases its command's lease first and reaps the command after, so the lease
ends as released, not as "holder died" because a sweep came in between. A zombie whose parent is
gone, or is PID 1 (an init that has not reaped it yet, or never will), counts as dead.

When ``/proc/<pid>`` cannot be read but ``kill(pid, 0)`` says the PID exists (``hidepid``
mounts, another user's process) the holder is taken as alive: wrongly ending a live job's lease
could hand its GPU to a second job, which is worse than a lease that waits for its TTL.

Only the lease store imports this module; it imports nothing from migctl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_DEAD_STATES = frozenset({"X", "x"})
_ZOMBIE = "Z"
_INIT_PID = 1


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the store needs."""

    state: str
    parent_pid: int
    start_ticks: int


def read_proc_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """State and start time of ``pid``, or None when ``/proc/<pid>/stat`` cannot be read."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as stat_file:
            text = stat_file.read().decode("ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    if len(fields) < 20:
        return None
    try:
        return ProcStat(state=fields[0], parent_pid=int(fields[1]), start_ticks=int(fields[19]))
    except ValueError:
        return None


def process_start_ticks(pid: int, proc: Path = PROC) -> int | None:
    """The start time of a live ``pid`` to record at acquire; None when unknown."""
    stat = read_proc_stat(pid, proc)
    return None if stat is None else stat.start_ticks


def pid_exists(pid: int) -> bool:
    """``kill(pid, 0)``: True unless the kernel says there is no such process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


def holder_alive(pid: int, start_ticks: int | None, proc: Path = PROC) -> bool:
    """Whether the process that took a lease (``pid`` started at ``start_ticks``) still runs."""
    if not pid_exists(pid):
        return False
    stat = read_proc_stat(pid, proc)
    if stat is None:
        # Hidden from us (hidepid), or it exited between the two checks: ask the kernel again.
        return pid_exists(pid)
    if stat.state in _DEAD_STATES:
        return False
    if start_ticks is not None and stat.start_ticks != start_ticks:
        return False  # a recycled PID: another process
    return stat.state != _ZOMBIE or _being_wound_up(stat.parent_pid, proc)


def _being_wound_up(parent_pid: int, proc: Path) -> bool:
    """Whether a zombie's parent still runs and so will collect it (an init does not count)."""
    return parent_pid > _INIT_PID and holder_alive(parent_pid, None, proc)
