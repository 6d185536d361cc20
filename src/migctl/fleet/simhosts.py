"""Simulated fleet hosts: each its own machine, identity, files and starting layout.

Why this exists: a simulated fleet must look like many machines, not one copied: each host is a
machine file named after it (the simulator derives GPU and MIG UUIDs from the machine's name, so
no two hosts share one), its journal and lease database live in the machine's own directory
(``Settings.for_machine``), and it starts in a given layout, maybe with devices held by a live
process (busy: the fleet must plan around them). ``prepare`` writes and sets up one host through
the Node API (the layout) and ``migctl sim attach`` (the holders). Used by ``MigCluster``, the
demo and the benchmarks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from migctl.errors import InvalidInputError, InvalidStateError
from migctl.fleet.soft_workers import check_soft_shares
from migctl.planner import DesiredGi, DesiredLayout

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_GPUS = 8


@dataclass(frozen=True, slots=True)
class SimHost:
    """One simulated host: ``gpus`` GPUs of ``model``, each in ``layout`` (GI profiles); the
    instances of GPU 0 at the indexes ``held`` (in placement order) are held by a live process
    each (busy: the fleet must never touch them). ``soft_shares`` (with ``layout=()``): its
    agent keeps a soft-share worker per share on each GPU (MIG-incapable, or MIG off)."""

    name: str
    model: str = "h100"
    gpus: int = 1
    layout: tuple[str, ...] = ("4g.40gb", "3g.40gb")
    held: tuple[int, ...] = ()
    soft_shares: tuple[int, ...] = ()  # a worker per share on each GPU without MIG

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise InvalidInputError(
                f"simulated host name {self.name!r} must be 1-63 lower-case letters, digits or -",
                hint="e.g. host-0",
            )
        if not 1 <= self.gpus <= MAX_GPUS:
            raise InvalidInputError(f"{self.name}: 1 to {MAX_GPUS} GPUs, not {self.gpus}")
        if any(not 0 <= i < len(self.layout) for i in self.held):
            raise InvalidInputError(f"{self.name}: held indexes must point into the layout")
        check_soft_shares(self.soft_shares)
        if self.soft_shares and self.layout:
            raise InvalidInputError(
                f"{self.name}: soft shares go on GPUs without MIG, but a MIG layout is given",
                hint="give layout=() with soft_shares (e.g. SimHost(NAME, model='l40s', "
                "layout=(), soft_shares=(50, 25, 25)))",
            )


def machine_text(spec: SimHost) -> str:
    return f"name: {spec.name}\ngpus:\n  - model: {spec.model}\n    count: {spec.gpus}\n"


def prepare(spec: SimHost, sim_dir: Path) -> tuple[Path, list[str]]:
    """Write the host's machine file in ``sim_dir`` and apply its layout; the machine file and
    the MIG devices to hold (``hold`` each with a live process)."""
    from migctl.node.open import open_node
    from migctl.schemas.layouts import InstancesTarget

    sim_dir.mkdir(parents=True, exist_ok=True)
    path = sim_dir / f"{spec.name}.yaml"
    path.write_text(machine_text(spec))
    desired = DesiredLayout(tuple(DesiredGi(p) for p in spec.layout))
    with open_node(sim=str(path), sim_dir=sim_dir) as node:
        if spec.layout:
            outcome = node.apply(InstancesTarget.of(dict.fromkeys(range(spec.gpus), desired)))
            if outcome.failure is not None:
                raise outcome.failure
        view = node.inventory([0]).gpu(0)
        instances = sorted(view.instances, key=lambda i: i.gi.placement.start) if view else []
    by_start = sorted(instances, key=lambda i: (i.gi.placement.start, i.gi.id))
    return path, [by_start[index].devices[0].uuid for index in spec.held]


def hold(machine: Path, sim_dir: Path, uuid: str, pid: int) -> None:
    """Attach live process ``pid`` to MIG device ``uuid`` (one device per process)."""
    argv = [sys.executable, "-m", "migctl", "--sim", str(machine), "sim", "attach"]
    argv += ["--pid", str(pid), "--device", uuid, "--memory", "1GiB"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    env["MIGCTL_SIM_DIR"] = str(sim_dir)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise InvalidStateError(f"could not hold {uuid} on {machine.stem}: {done.stderr.strip()}")
