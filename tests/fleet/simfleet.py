"""Simulated fleet hosts for the fleet tests: machine files, initial layouts, busy devices.

Why this exists: the controller tests need hosts with their own identity and state, each a
simulated machine file driven through the Node API (``NodeHost`` over a ``LocalNode`` opened
per operation, so several hosts share one process), set up in a given layout with some
devices held by a live process (busy). Each machine keeps its lease database and journal in
its own directory (``Settings.for_machine``). Imported by tests/fleet/ only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from migctl.backends.select import open_sim_control
from migctl.fleet.launch import InProcessLauncher, Launcher
from migctl.fleet.node_host import NodeHost, ReopenedNode
from migctl.node.local import LocalNode
from migctl.node.open import open_node
from migctl.planner import DesiredGi, DesiredLayout
from migctl.schemas.layouts import InstancesTarget

RAN: list[tuple[str, str]] = []  # (task label, worker name), appended by ``record``
_LOCK = threading.Lock()
SIMS: dict[str, Path] = {}  # host name -> its machine file


def record(label: str, seconds: float = 0.0) -> str:
    """A task: note which worker ran it (in-process workers share this list)."""
    import time

    from distributed import get_worker

    time.sleep(seconds)
    name = str(get_worker().name)
    with _LOCK:
        RAN.append((label, name))
    return name


def machine_file(directory: Path, name: str, gpus: int = 1, model: str = "h100") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(f"name: {name}\ngpus:\n  - model: {model}\n    count: {gpus}\n")
    return path


def opener(path: Path) -> LocalNode:
    return open_node(sim=str(path))


def make_host(
    directory: Path,
    name: str,
    layout: Sequence[str],
    gpus: int = 1,
    launcher: Launcher | None = None,
) -> NodeHost:
    """Host ``name`` with ``gpus`` H100s, each holding ``layout`` (profiles, placed for us)."""
    path = machine_file(directory, name, gpus)
    with open_node(sim=str(path)) as node:
        desired = DesiredLayout(tuple(DesiredGi(p) for p in layout))
        outcome = node.apply(InstancesTarget.of(dict.fromkeys(range(gpus), desired)))
        assert outcome.failure is None, outcome.failure
    SIMS[name] = path
    return NodeHost(name, ReopenedNode(partial(opener, path)), launcher or InProcessLauncher())


def hold(host: NodeHost, uuid: str) -> None:
    """Make a device busy: this test process runs on it (as the simulator sees it)."""
    open_sim_control(str(SIMS[host.name])).attach(os.getpid(), 0, uuid, 100)


def leases_of(host: NodeHost) -> list[str]:
    """The MIG device uuids with an active lease in the host's own lease store."""
    with open_node(sim=str(SIMS[host.name])) as node:
        return sorted(lease.uuid for lease in node.leases())
