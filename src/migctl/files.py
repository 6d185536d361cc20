"""Atomic file replacement: a file is always either its old or its new content.

Why this exists: the simulator's state, the apply journal and the CDI spec are read by
other processes at any moment and must survive a crash mid-write. Write a temporary file
in the same directory, flush and fsync it, then rename it over the target.

A writer killed between creating its temporary file and the rename (SIGKILL, power loss)
leaves that file behind. Temporary files carry a recognisable name,
``.TARGET.PID.RANDOM.migctl-tmp``, and every write of a target first removes the leftovers of
writers that no longer run (a live writer's file is never touched). Leftovers of older
migctl versions (``.TARGET.RANDOM``, no PID) are removed once they are ten minutes old.

Anyone may import this module; it imports nothing from migctl.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

TEMP_SUFFIX = ".migctl-tmp"
_LEGACY_TEMP = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkstemp's random part, no suffix
LEGACY_TEMP_AGE_S = 600.0


def atomic_write(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` atomically (``mode``: permissions of the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path)
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def sweep_temporaries(path: Path) -> list[Path]:
    """Remove temporary files of ``path`` left by writers that died; returns those removed."""
    prefix = f".{path.name}."
    removed = []
    try:
        entries = [entry.name for entry in os.scandir(path.parent)]
    except OSError:
        return []
    for name in entries:
        if name.startswith(prefix) and _abandoned(path.parent / name, name[len(prefix) :]):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                (path.parent / name).unlink()
                removed.append(path.parent / name)
    return removed


def _abandoned(candidate: Path, rest: str) -> bool:
    if rest.endswith(TEMP_SUFFIX):
        pid_text = rest.split(".", 1)[0]
        return pid_text.isdigit() and not _running(int(pid_text))
    if _LEGACY_TEMP.fullmatch(rest):
        try:
            return time.time() - candidate.stat().st_mtime > LEGACY_TEMP_AGE_S
        except OSError:
            return False
    return False


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
