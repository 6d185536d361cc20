"""Facts about processes on this host: who runs a PID and what it is.

Why this exists: NVML reports only PIDs; a user asking "who is on this MIG device?" wants
a user name and a command. Read paths degrade: anything unreadable becomes ``None``.
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


def process_facts(pid: int) -> ProcessFacts:
    uid = _uid(pid)
    return ProcessFacts(pid=pid, user=_user(uid), uid=uid, command=_command(pid))
