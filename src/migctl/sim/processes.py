"""Liveness of the real processes attached to simulated GPUs.

Why this exists: a simulated MIG device is busy while a real process (``migctl run``'s
child, a test's ``sleep``) holds it, and free again once that PID exits, exactly like a
CUDA process on real hardware. The start time from ``/proc/PID/stat`` guards against a
recycled PID; zombies count as exited (see ``migctl.host``).
"""

from __future__ import annotations

from pathlib import Path

from migctl.host import is_alive, process_start_time

__all__ = ["is_alive", "process_name", "process_start_time"]


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
