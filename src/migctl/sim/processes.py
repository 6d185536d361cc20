"""Liveness of the real processes attached to simulated GPUs.

Why this exists: a simulated MIG device is busy while a real process (``migctl run``'s
child, a test's ``sleep``) holds it, and free again once that PID exits, exactly like a
CUDA process on real hardware. The start time from ``/proc/PID/stat`` guards against a
recycled PID; zombies count as exited.
"""

from __future__ import annotations

from pathlib import Path


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


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def is_alive(pid: int, start_time: int | None) -> bool:
    current = process_start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time
