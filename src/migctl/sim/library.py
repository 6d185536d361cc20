"""The simulated NVML library: the C entry points pynvml calls, written in Python.

Why this exists: migctl's NVML backend drives the real ``pynvml`` both on hardware and in
simulation; only the library object under pynvml changes (``pynvml.nvmlLib``). Every
entry point below takes the same ctypes arguments as ``libnvidia-ml.so`` and returns an
NVML return code, following the rules in ``reference/mig-geometry.md`` §1-§3 and the
real H100/H200 captures. Unknown entry points raise AttributeError, which pynvml turns
into FUNCTION_NOT_FOUND, just as an old driver would.

Layer: sim. Never imports pynvml; reads and writes ctypes objects through ``cabi``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from migctl.sim import cabi
from migctl.sim.cabi import NvmlReturn
from migctl.sim.machine import SimMachine
from migctl.sim.nvml_codes import ERROR_STRINGS, SUCCESS, UNINITIALIZED
from migctl.sim.ops_device import GpuOps
from migctl.sim.ops_mig import MigOps
from migctl.sim.state import KILL, MachineState, SimFault


class _CFunction:
    """Stands in for a ctypes function pointer: callable, with restype/argtypes."""

    def __init__(self, name: str, impl: Callable[..., int]) -> None:
        self.__name__ = name
        self._impl = impl
        self.restype: Any = None
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        return self._impl(*args)


class SimLibrary:
    """The object pynvml loads instead of ``CDLL("libnvidia-ml.so.1")``."""

    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine
        self._api = _Api(machine)
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> _CFunction:
        if not name.startswith("nvml"):
            raise AttributeError(name)
        impl = getattr(self._api, name, None)
        if impl is None:
            raise AttributeError(name)
        return _CFunction(name, self._guard(name, impl))

    def _guard(self, name: str, impl: Callable[..., int]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            with self._lock:
                if name == "nvmlErrorString":
                    return impl(*args)
                if not self._api.initialized and not name.startswith("nvmlInit"):
                    return UNINITIALIZED
                try:
                    self._api.apply_faults(name, args)
                    return impl(*args)
                except NvmlReturn as ret:
                    return ret.code

        return call


class _Api(GpuOps, MigOps):
    """The entry points. Methods named ``nvml*`` are exported; the rest are helpers."""

    def __init__(self, machine: SimMachine) -> None:
        super().__init__(machine)
        self.initialized = 0

    # --- library ---------------------------------------------------------------------

    def nvmlInitWithFlags(self, flags: Any) -> int:
        self.machine.validate(self.machine.store.read())
        self.initialized += 1
        return SUCCESS

    def nvmlInit_v2(self) -> int:
        return self.nvmlInitWithFlags(0)

    def nvmlShutdown(self) -> int:
        self.initialized = max(0, self.initialized - 1)
        return SUCCESS

    def nvmlErrorString(self, result: Any) -> bytes:
        return ERROR_STRINGS.get(cabi.uint(result), "Unknown Error").encode()

    def nvmlSystemGetDriverVersion(self, buffer: Any, length: Any) -> int:
        cabi.store_string(buffer, length, self.state().driver_version)
        return SUCCESS

    def nvmlSystemGetNVMLVersion(self, buffer: Any, length: Any) -> int:
        major = self.state().cuda_driver_version // 1000
        cabi.store_string(buffer, length, f"{major}.{self.state().driver_version}")
        return SUCCESS

    def nvmlSystemGetCudaDriverVersion(self, ref: Any) -> int:
        cabi.set_value(ref, self.state().cuda_driver_version)
        return SUCCESS

    def nvmlSystemGetCudaDriverVersion_v2(self, ref: Any) -> int:
        return self.nvmlSystemGetCudaDriverVersion(ref)

    # --- faults ----------------------------------------------------------------------

    def apply_faults(self, name: str, args: tuple[Any, ...]) -> None:
        """Fail (or kill the caller at) the call if an injected fault matches it."""
        if not self.state().faults:
            return
        gpu = self._gpu_index_of(args)
        with self.machine.store.transaction() as state:
            fault = _matching_fault(state, name, gpu)
            if fault is None:
                return
            if fault.skip > 0:
                fault.skip -= 1
                return
            fault.count -= 1
            if fault.count <= 0:
                state.faults.remove(fault)
            error = fault.error
        if error == KILL:
            os.kill(os.getpid(), signal.SIGKILL)
        raise NvmlReturn(error)

    @staticmethod
    def _gpu_index_of(args: tuple[Any, ...]) -> int | None:
        if not args:
            return None
        try:
            return cabi.handle_of(args[0]).gpu
        except NvmlReturn:
            return None


MUTATIONS = frozenset(
    {
        "nvmlDeviceSetMigMode",
        "nvmlDeviceCreateGpuInstance",
        "nvmlDeviceCreateGpuInstanceWithPlacement",
        "nvmlGpuInstanceDestroy",
        "nvmlGpuInstanceCreateComputeInstance",
        "nvmlGpuInstanceCreateComputeInstanceWithPlacement",
        "nvmlComputeInstanceDestroy",
    }
)
MUTATION_GROUP = "nvml@mutation"  # a fault "function" that matches every state change


def _matches(fault: SimFault, name: str) -> bool:
    if fault.function == MUTATION_GROUP:
        return name in MUTATIONS
    return name.startswith(fault.function)


def _matching_fault(state: MachineState, name: str, gpu: int | None) -> SimFault | None:
    for fault in state.faults:
        if _matches(fault, name) and (fault.gpu is None or fault.gpu == gpu):
            return fault
    return None
