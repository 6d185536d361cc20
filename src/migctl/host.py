"""Facts about processes on this host: who runs a PID, what it is, whether it still runs.

Why this exists: NVML reports only PIDs; a user asking "who is on this MIG device?" wants
a user name and a command, and leases, the simulator and the apply journal need to know
whether a holder still lives (the start time from ``/proc/PID/stat`` guards against a
recycled PID; zombies count as exited). Read paths degrade: unreadable becomes ``None``.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    user: str | None
    uid: int | None
    command: str | None


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _user(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _command(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    if parts:
        return " ".join(parts)
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    _, _, rest = text.rpartition(")")
    return rest.split()


def process_start_time(pid: int) -> int | None:
    """Field 22 (starttime, clock ticks since boot), or None if there is no such live PID."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def process_facts(pid: int) -> ProcessFacts:
    uid = _uid(pid)
    return ProcessFacts(pid=pid, user=_user(uid), uid=uid, command=_command(pid))


def is_alive(pid: int, start_time: int | None) -> bool:
    """True while ``pid`` runs (and, with ``start_time``, is the same process as then)."""
    current = process_start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time
