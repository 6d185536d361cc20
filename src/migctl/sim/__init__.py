"""The simulated MIG machine: a stand-in for the NVML C library that pynvml drives unchanged.

Why this exists: no MIG instance may ever be created on the only real GPUs at hand, so the
simulator is the project's truth — a strict, stateful model of MIG hardware built from
the catalog and checked against real NVML captures. ``SimLibrary`` replaces
``libnvidia-ml.so`` under pynvml; ``SimControl`` is the simulator's own panel (attach
processes, reboot, reset, inject faults), which has no NVML counterpart.

Layer: below backends, above catalog. Never imports pynvml.
"""

from __future__ import annotations

from migctl.sim.control import SimControl, forget_sim, open_sim
from migctl.sim.library import SimLibrary
from migctl.sim.machine import SimMachine
from migctl.sim.machines import NAMED, describe_named
from migctl.sim.state import MachineState, SimFault
from migctl.sim.store import FileStore, MemoryStore, default_sim_dir

__all__ = [
    "NAMED",
    "FileStore",
    "MachineState",
    "MemoryStore",
    "SimControl",
    "SimFault",
    "SimLibrary",
    "SimMachine",
    "default_sim_dir",
    "describe_named",
    "forget_sim",
    "open_sim",
]
