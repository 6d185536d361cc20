"""One NVML library per process: pynvml's library pointer is global, so guard it.

Why this module exists: pynvml keeps the loaded library in a module global. Opening a backend
over a second library (another simulated machine, or the real driver beside a simulator) would
silently re-point every backend already open in the process: a node opened on a simulated
8 x H100 would start reporting the GPUs of the other machine. :func:`claim` refuses that with a
clear error; opening the same library again is fine. A backend holds its claim until it is
closed (:func:`release`) or garbage-collected (a backend nobody can reach drives nothing).

Only ``backends.nvml.backend`` imports this module.
"""

from __future__ import annotations

import threading
import weakref

from migctl.errors import UsageError

_lock = threading.Lock()
_holders: weakref.WeakSet[object] = weakref.WeakSet()  # backends open over the current library
_current: list[tuple[str, str]] = []  # (key, words) of the library they use: at most one


def library_key(library: object | None) -> tuple[str, str]:
    """(identity, words) of a library: the real driver, or a simulated machine's state file."""
    if library is None:
        return "nvml", "the NVIDIA driver (libnvidia-ml.so)"
    machine = getattr(library, "machine", None)
    store = getattr(machine, "store", None)
    path = getattr(store, "path", None)
    if path is not None:
        return f"sim:{path}", f"the simulated machine in {path}"
    return f"object:{id(library)}", "a simulated machine held in memory"


def claim(holder: object, library: object | None) -> None:
    """Note that ``holder`` (a backend) opens over ``library``; refuse a different library
    while a backend over another one is still open."""
    key, words = library_key(library)
    with _lock:
        if _current and _current[0][0] != key and len(_holders) > 0:
            raise UsageError(
                f"this process already drives {_current[0][1]}; it cannot also open {words}",
                hint="pynvml allows one NVML library per process: close the first node, or "
                "open the second in another process (for tests: migctl.testing)",
                context={"open": _current[0][1], "asked": words},
            )
        _current[:] = [(key, words)]
        _holders.add(holder)


def release(holder: object) -> None:
    """Note that ``holder`` closed."""
    with _lock:
        _holders.discard(holder)


def open_library() -> str | None:
    """Words for the library a backend of this process holds open, or None."""
    with _lock:
        return _current[0][1] if _current and len(_holders) > 0 else None
