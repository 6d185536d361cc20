"""Simulated fleet hosts for the fleet tests: machine files, initial layouts, busy devices.

Why this exists: the controller tests need hosts with their own identity and state, each a
simulated machine file driven through the real library (``LocalHost``), set up in a given
layout with some devices held by a live process (busy). Imported by tests/fleet/ only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from migctl.backends.select import open_backend, open_sim_control
from migctl.engine.apply import apply
from migctl.fleet.local_host import LocalHost
from migctl.planner import DesiredGi, DesiredLayout

RAN: list[tuple[str, str]] = []  # (task label, worker name), appended by ``record``
_LOCK = threading.Lock()


def record(label: str, seconds: float = 0.0) -> str:
    """A task: note which worker ran it (in-process workers share this list)."""
    import time

    from distributed import get_worker

    time.sleep(seconds)
    name = str(get_worker().name)
    with _LOCK:
        RAN.append((label, name))
    return name


def make_host(directory: Path, name: str, layout: Sequence[str], gpus: int = 1) -> LocalHost:
    """Host ``name`` with ``gpus`` H100s, each holding ``layout`` (profiles, placed for us)."""
    path = directory / f"{name}.yaml"
    path.write_text(f"name: {name}\ngpus:\n  - model: h100\n    count: {gpus}\n")
    backend = open_backend(str(path))
    try:
        desired = DesiredLayout(tuple(DesiredGi(p) for p in layout))
        outcome = apply(backend, dict.fromkeys(range(gpus), desired))
        assert outcome.error is None, outcome.error
    finally:
        backend.close()
    return LocalHost(name, sim=str(path))


def hold(host: LocalHost, uuid: str) -> None:
    """Make a device busy: this test process runs on it (as the simulator sees it)."""
    assert host.sim is not None
    open_sim_control(host.sim).attach(os.getpid(), 0, uuid, 100)


@contextmanager
def isolated_state(directory: Path) -> Iterator[None]:
    """Own lease database and state directory (journals) for one scenario."""
    names = ("MIGCTL_STATE_DIR", "MIGCTL_LEASE_DB", "MIGCTL_SIM_DIR")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["MIGCTL_STATE_DIR"] = str(directory / "state")
    os.environ["MIGCTL_LEASE_DB"] = str(directory / "leases.db")
    os.environ["MIGCTL_SIM_DIR"] = str(directory / "sim")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
