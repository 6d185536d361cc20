"""The simulator's own control panel: open a machine, attach processes, reboot, inject faults.

Why this exists: a real machine has things NVML cannot do — processes start and stop, the
system reboots, an administrator resets a GPU, hardware fails. Tests, the demo and users
trying migctl need to do those to the simulated machine; this is the one place that may
change simulator state outside the NVML entry points.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from migctl.catalog import Catalog
from migctl.errors import (
    InUseError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    UsageError,
)
from migctl.sim.machine import SimMachine, processes_on, prune_dead
from migctl.sim.machines import NAMED, machine_from_file, named_machine
from migctl.sim.nvml_codes import NAMES
from migctl.sim.processes import process_name, process_start_time
from migctl.sim.state import KILL, MachineState, SimFault, SimGpu, SimProcess
from migctl.sim.store import FileStore, MemoryStore, default_sim_dir

log = logging.getLogger(__name__)


def open_sim(spec: str, catalog: Catalog, sim_dir: Path | None = None) -> SimMachine:
    """A machine by name (``dgx-h100``), machine file (``node.yaml``), or either in memory
    only (``memory:dgx-h100``, ``memory:node.yaml``: nothing persists, for library use)."""
    if spec.startswith("memory:"):
        name = spec[len("memory:") :]
        state = (
            machine_from_file(Path(name), catalog)
            if name.endswith((".yaml", ".yml"))
            else named_machine(name, catalog)
        )
        machine = SimMachine(MemoryStore(state), catalog)
    else:
        machine = SimMachine(_file_store(spec, catalog, sim_dir or default_sim_dir()), catalog)
    machine.validate(machine.store.read())
    return machine


def forget_sim(spec: str, catalog: Catalog, sim_dir: Path | None = None) -> FileStore:
    """Remove a simulated machine's state and its own files without reading them (so that a
    damaged state can be forgotten too); returns the store that was emptied."""
    if spec.startswith("memory:"):
        raise InvalidInputError("this simulated machine lives in memory; nothing to remove")
    store = _file_store(spec, catalog, sim_dir or default_sim_dir())
    store.remove()
    return store


def _file_store(spec: str, catalog: Catalog, sim_dir: Path) -> FileStore:
    if spec in NAMED:
        return FileStore(sim_dir / f"{spec}.json", lambda: named_machine(spec, catalog))
    path = Path(spec)
    if path.suffix in {".yaml", ".yml"}:
        if not path.exists():
            raise NotFoundError(f"machine file {path} does not exist")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
        return FileStore(
            sim_dir / f"{path.stem}-{digest}.json", lambda: machine_from_file(path, catalog)
        )
    raise NotFoundError(
        f"no simulated machine named {spec!r}",
        hint="named machines: " + ", ".join(NAMED) + "; or a machine file ending in .yaml",
    )


class SimControl:
    """Operations on a simulated machine that NVML has no call for."""

    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine

    @property
    def state_path(self) -> Path | None:
        store = self.machine.store
        return store.path if isinstance(store, FileStore) else None

    @property
    def files_dir(self) -> Path:
        """The machine's own files: apply journal, lease database, CDI spec."""
        return self.machine.files_dir

    def state(self) -> MachineState:
        return self.machine.store.read()

    def attach(
        self, pid: int, gpu_index: int, mig_uuid: str | None, memory_mib: int = 0, name: str = ""
    ) -> SimProcess:
        """Attach a live process to a MIG device (or to a whole GPU with MIG off)."""
        start = process_start_time(pid)
        if start is None:
            raise NotFoundError(f"no running process with PID {pid}")
        if memory_mib < 0:
            raise UsageError("memory must be >= 0 MiB")
        with self.machine.store.transaction() as state:
            gpu = self._gpu(state, gpu_index)
            gi, ci = self._target(gpu, mig_uuid)
            prune_dead(gpu)
            gpu.processes = [p for p in gpu.processes if p.pid != pid]
            proc = SimProcess(pid, start, memory_mib, name or process_name(pid), gi, ci)
            gpu.processes.append(proc)
        log.info("sim: attached PID %d to GPU %d (GI %s, CI %s)", pid, gpu_index, gi, ci)
        return proc

    @staticmethod
    def _target(gpu: SimGpu, mig_uuid: str | None) -> tuple[int | None, int | None]:
        if mig_uuid is None:
            if gpu.mig_current:
                raise UsageError(
                    f"GPU {gpu.index} is in MIG mode: a process must run on a MIG device",
                    hint="pass --device MIG-<uuid> (see `migctl list`)",
                )
            return None, None
        for gi in gpu.gis:
            for ci in gi.cis:
                if ci.uuid == mig_uuid:
                    return gi.id, ci.id
        raise NotFoundError(f"no MIG device {mig_uuid} on GPU {gpu.index}")

    def detach(self, pid: int) -> int:
        removed = 0
        with self.machine.store.transaction() as state:
            for gpu in state.gpus:
                before = len(gpu.processes)
                gpu.processes = [p for p in gpu.processes if p.pid != pid]
                removed += before - len(gpu.processes)
        return removed

    def reboot(self) -> None:
        """Instances and processes vanish; a pending MIG mode becomes current."""
        with self.machine.store.transaction() as state:
            for gpu in state.gpus:
                gpu.gis.clear()
                gpu.processes.clear()
                gpu.mig_current = gpu.mig_pending
            state.boot_id += 1
        log.info("sim: rebooted")

    def reset_gpu(self, gpu_index: int) -> None:
        """Like a GPU reset: refused while processes hold it (or where the machine cannot
        reset a GPU, e.g. a pass-through VM); wipes its instances."""
        with self.machine.store.transaction() as state:
            gpu = self._gpu(state, gpu_index)
            if not state.reset_supported:
                raise NotSupportedError(
                    f"GPU {gpu_index} cannot be reset on {state.name} (reset_supported: false)",
                    hint="reboot the machine instead: `migctl sim reboot`",
                    context={"gpu": gpu_index},
                )
            busy = processes_on(gpu)
            if busy:
                pids = ", ".join(str(p.pid) for p in busy)
                raise InUseError(
                    f"GPU {gpu_index} cannot be reset: processes {pids} hold it",
                    hint="stop those processes first",
                    context={"gpu": gpu_index, "pids": [p.pid for p in busy]},
                )
            gpu.gis.clear()
            gpu.processes.clear()
            gpu.mig_current = gpu.mig_pending

    def inject_fault(
        self, function: str, error: str, count: int = 1, gpu: int | None = None, skip: int = 0
    ) -> SimFault:
        code = KILL if error.upper() == "KILL" else NAMES.get(error.upper())
        if code is None:
            raise UsageError(
                f"unknown NVML error {error!r}", hint="one of: " + ", ".join([*NAMES, "KILL"])
            )
        if not function.startswith("nvml") or count < 1 or skip < 0:
            raise UsageError("fault needs an NVML function name (or prefix), count >= 1, skip >= 0")
        fault = SimFault(function=function, error=code, count=count, gpu=gpu, skip=skip)
        with self.machine.store.transaction() as state:
            state.faults.append(fault)
        return fault

    def clear_faults(self) -> int:
        with self.machine.store.transaction() as state:
            count = len(state.faults)
            state.faults.clear()
        return count

    def set_permissions(self, mode: str) -> None:
        if mode not in {"allow", "deny", "root-only"}:
            raise UsageError("permissions must be allow, deny or root-only")
        with self.machine.store.transaction() as state:
            state.permissions = mode

    def set_reset_supported(self, supported: bool) -> None:
        with self.machine.store.transaction() as state:
            state.reset_supported = supported

    def remove_state(self) -> None:
        store = self.machine.store
        if not isinstance(store, FileStore):
            raise InvalidInputError("this simulated machine lives in memory; nothing to remove")
        store.remove()

    @staticmethod
    def _gpu(state: MachineState, index: int) -> SimGpu:
        gpu = state.gpu(index)
        if gpu is None:
            raise NotFoundError(
                f"GPU {index} does not exist on {state.name}",
                hint=f"GPUs are 0..{len(state.gpus) - 1}",
            )
        return gpu
