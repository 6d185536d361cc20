"""One NVML library per process: pynvml's library pointer is global, so guard it.

Why this module exists: pynvml keeps the loaded library in a module global. Opening a backend
over a second library (another simulated machine, or the real driver beside a simulator) would
silently re-point every backend already open in the process: a node opened on a simulated
8 x H100 would start reporting the GPUs of the other machine. :func:`claim` refuses that with a
clear error; opening the same library again is fine (counted, released by :func:`release`).

Only ``backends.nvml.backend`` imports this module.
"""

from __future__ import annotations

import threading

from migctl.errors import UsageError

_lock = threading.Lock()
_current: list[tuple[str, str, int]] = []  # (key, description, open count): at most one entry


def library_key(library: object | None) -> tuple[str, str]:
    """(identity, words) of a library: the real driver, or a simulated machine's state file."""
    if library is None:
        return "nvml", "the NVIDIA driver (libnvidia-ml.so)"
    machine = getattr(library, "machine", None)
    store = getattr(machine, "store", None)
    path = getattr(store, "path", None)
    if path is not None:
        return f"sim:{path}", f"the simulated machine in {path}"
    return f"object:{id(library)}", f"the simulated machine {library!r}"


def claim(library: object | None) -> None:
    """Note that a backend over ``library`` opens; refuse a different library already open."""
    key, words = library_key(library)
    with _lock:
        if _current and _current[0][0] != key:
            raise UsageError(
                f"this process already drives {_current[0][1]}; it cannot also open {words}",
                hint="pynvml allows one NVML library per process: close the first node, or "
                "open the second in another process (for tests: migctl.testing)",
                context={"open": _current[0][1], "asked": words},
            )
        count = _current[0][2] if _current else 0
        _current[:] = [(key, words, count + 1)]


def release(library: object | None) -> None:
    """Note that a backend over ``library`` closed."""
    key, _ = library_key(library)
    with _lock:
        if _current and _current[0][0] == key:
            entry = _current[0]
            _current[:] = [] if entry[2] <= 1 else [(entry[0], entry[1], entry[2] - 1)]


def open_library() -> str | None:
    """Words for the library open in this process, or None."""
    with _lock:
        return _current[0][1] if _current else None
