"""A simulated MPS client shows in the simulated NVML as a process on its device.

Why this exists: on a real GPU, every CUDA process that attached to an MPS server is a compute
process of the GPU (or MIG device) it runs on, so ``nvidia-smi``, ``migctl status`` and the
busy checks see who runs there. The simulated client (``migctl.sim.mps_client``) does the same
through the simulator's ``attach`` (what ``migctl sim attach`` does): when it attaches, and
again with the memory it has allocated; it detaches when it leaves. The simulated control
daemon learns which simulated machine it serves from ``MIGCTL_SIM_MPS_MACHINE``: the path of
the machine's state file (``NAME.json``; migctl sets it when it starts the daemon for a
simulated machine). Without it (a daemon started by hand, or a machine that lives in memory
only) nothing is registered. A failure to register is logged and ignored: the MPS model goes
on without it. Layer: simulator.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.errors import MigctlError

if TYPE_CHECKING:
    from migctl.sim.control import SimControl
    from migctl.sim.state import MachineState

log = logging.getLogger(__name__)

MACHINE_ENV = "MIGCTL_SIM_MPS_MACHINE"


def machine_of_environment() -> str:
    """The state file of the simulated machine the daemon serves ("" when none)."""
    return os.environ.get(MACHINE_ENV, "")


def register(machine: str, device: str, pid: int, memory_mib: int = 0) -> bool:
    """Attach ``pid`` to ``device`` (a ``GPU-`` or ``MIG-`` UUID) of the simulated machine
    whose state file is ``machine``."""
    if not machine or not device or not Path(machine).is_file():
        return False
    try:
        control = _control(machine)
        for gpu in control.state().gpus:
            if gpu.uuid == device:
                control.attach(pid, gpu.index, None, memory_mib)
                return True
            if any(ci.uuid == device for gi in gpu.gis for ci in gi.cis):
                control.attach(pid, gpu.index, device, memory_mib)
                return True
    except (MigctlError, OSError) as error:
        log.warning("simulated MPS client %d not shown on %s: %s", pid, device, error)
    return False


def unregister(machine: str, pid: int) -> None:
    """Detach ``pid`` from the simulated machine (it left its MPS server)."""
    if not machine or not Path(machine).is_file():
        return
    try:
        _control(machine).detach(pid)
    except (MigctlError, OSError) as error:
        log.warning("simulated MPS client %d not detached: %s", pid, error)


def _control(machine: str) -> SimControl:
    from migctl.catalog import load_catalog
    from migctl.sim.control import SimControl
    from migctl.sim.machine import SimMachine
    from migctl.sim.store import FileStore

    def missing() -> MachineState:
        raise MigctlError(f"simulated machine state {machine} is gone")

    return SimControl(SimMachine(FileStore(Path(machine), missing), load_catalog()))
