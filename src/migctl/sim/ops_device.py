"""Simulated device-level entry points: enumeration, identity, memory, MIG mode, processes.

Why this exists: see ``library.py``. These are the calls ``nvidia-smi -L``, ``-q`` and
``-mig`` make, including the MIG device handles CUDA-level tools enumerate.
"""

from __future__ import annotations

import re
from typing import Any

from migctl.sim import cabi
from migctl.sim.cabi import KIND_GPU, KIND_MIG, Handle, NvmlReturn
from migctl.sim.machine import processes_on
from migctl.sim.machines import serial_number
from migctl.sim.nvml_codes import (
    IN_USE,
    INVALID_ARGUMENT,
    NOT_FOUND,
    NOT_SUPPORTED,
    RESET_REQUIRED,
    SUCCESS,
)
from migctl.sim.ops_base import OpsBase
from migctl.sim.state import MachineState, SimGpu

MIB = 1024 * 1024
NO_INSTANCE = 0xFFFFFFFF
ARCH_BY_NAME = {"volta": 5, "turing": 6, "ampere": 7, "ada": 8, "hopper": 9, "blackwell": 10}


def mig_devices(gpu: SimGpu) -> list[tuple[int, int]]:
    """(GI id, CI id) of every MIG device, in enumeration order."""
    return [(gi.id, ci.id) for gi in sorted(gpu.gis, key=lambda g: g.id) for ci in gi.cis]


def activate_pending(state: MachineState, gpu: SimGpu) -> int:
    """Try the reset that makes a pending MIG mode current; return the activation status."""
    if gpu.mig_current == gpu.mig_pending:
        return SUCCESS
    if processes_on(gpu):
        return IN_USE
    if not state.reset_supported:
        return RESET_REQUIRED
    gpu.mig_current = gpu.mig_pending
    gpu.gis.clear()
    return SUCCESS


class GpuOps(OpsBase):
    # --- enumeration and identity ---------------------------------------------------

    def nvmlDeviceGetCount_v2(self, ref: Any) -> int:
        cabi.set_value(ref, len(self.state().gpus))
        return SUCCESS

    def nvmlDeviceGetHandleByIndex_v2(self, index: Any, ref: Any) -> int:
        position = cabi.uint(index)
        self.require(0 <= position < len(self.state().gpus), INVALID_ARGUMENT)
        cabi.store_handle(ref, Handle(KIND_GPU, position))
        return SUCCESS

    def nvmlDeviceGetHandleByUUID(self, uuid: Any, ref: Any) -> int:
        text = (uuid.value if hasattr(uuid, "value") else uuid).decode()
        for gpu in self.state().gpus:
            if gpu.uuid == text:
                cabi.store_handle(ref, Handle(KIND_GPU, gpu.index))
                return SUCCESS
            for gi in gpu.gis:
                for ci in gi.cis:
                    if ci.uuid == text:
                        cabi.store_handle(ref, Handle(KIND_MIG, gpu.index, gi.id, ci.id))
                        return SUCCESS
        raise NvmlReturn(NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: Any, ref: Any) -> int:
        cabi.set_value(ref, cabi.handle_of(handle).gpu)
        return SUCCESS

    def nvmlDeviceGetName(self, handle: Any, buffer: Any, length: Any) -> int:
        state = self.state()
        h = cabi.handle_of(handle)
        _gpu, model = self.gpu_of(state, h)
        name = model.nvidia_smi_name
        if h.kind == KIND_MIG:
            ref, ci = self.ci_ref(state, handle)
            name += f" MIG {self._ci_name(ref.model, ref.profile.name, ci.profile_id)}"
        cabi.store_string(buffer, length, name)
        return SUCCESS

    @staticmethod
    def _ci_name(model: Any, gi_profile: str, ci_profile_id: int) -> str:
        for ci in model.ci_profiles_for(gi_profile):
            if ci.nvml_index == ci_profile_id:
                return str(ci.name)
        return gi_profile

    def nvmlDeviceGetUUID(self, handle: Any, buffer: Any, length: Any) -> int:
        state = self.state()
        h = cabi.handle_of(handle)
        gpu, _ = self.gpu_of(state, h)
        text = gpu.uuid if h.kind == KIND_GPU else self.ci_ref(state, handle)[1].uuid
        cabi.store_string(buffer, length, text)
        return SUCCESS

    def nvmlDeviceGetSerial(self, handle: Any, buffer: Any, length: Any) -> int:
        gpu, _ = self.physical(self.state(), handle)
        cabi.store_string(buffer, length, serial_number(gpu.uuid))
        return SUCCESS

    def nvmlDeviceGetPciInfo_v3(self, handle: Any, ref: Any) -> int:
        gpu, model = self.physical(self.state(), handle)
        info = cabi.target(ref)
        domain, bus, rest = gpu.bus_id.split(":")
        info.busIdLegacy = gpu.bus_id.encode()[:15]
        info.busId = gpu.bus_id.encode()
        info.domain, info.bus = int(domain, 16), int(bus, 16)
        info.device = int(rest.split(".")[0], 16)
        device_id = model.pci_device_ids[0] if model.pci_device_ids else 0
        info.pciDeviceId = (device_id << 16) | 0x10DE
        info.pciSubSystemId = 0
        return SUCCESS

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any, major: Any, minor: Any) -> int:
        _, model = self.gpu_of(self.state(), cabi.handle_of(handle))
        found = re.fullmatch(r"(\d+)\.(\d+)", model.compute_capability or "")
        self.require(found is not None, NOT_SUPPORTED)  # unknown, or not MAJOR.MINOR
        assert found is not None
        cabi.set_value(major, int(found.group(1)))
        cabi.set_value(minor, int(found.group(2)))
        return SUCCESS

    def nvmlDeviceGetArchitecture(self, handle: Any, ref: Any) -> int:
        _, model = self.gpu_of(self.state(), cabi.handle_of(handle))
        family = (model.architecture or "").split()[0].lower() if model.architecture else ""
        cabi.set_value(ref, ARCH_BY_NAME.get(family, 0xFFFFFFFF))
        return SUCCESS

    # --- memory ---------------------------------------------------------------------

    def _memory(self, handle: Any) -> tuple[int, int]:
        """(total, used) in bytes for a GPU or a MIG device."""
        state = self.state()
        h = cabi.handle_of(handle)
        gpu, model = self.gpu_of(state, h)
        if h.kind == KIND_MIG:
            ref, _ = self.ci_ref(state, handle)
            total_mib = ref.profile.memory_mib or 0
            used_mib = sum(p.used_memory_mib for p in processes_on(gpu, gi=ref.gi.id))
        else:
            total_mib = model.total_memory_mib or _largest_profile_mib(model)
            used_mib = sum(p.used_memory_mib for p in processes_on(gpu))
        return total_mib * MIB, min(used_mib, total_mib) * MIB

    def nvmlDeviceGetMemoryInfo(self, handle: Any, ref: Any) -> int:
        total, used = self._memory(handle)
        memory = cabi.target(ref)
        memory.total, memory.used, memory.free = total, used, total - used
        return SUCCESS

    def nvmlDeviceGetMemoryInfo_v2(self, handle: Any, ref: Any) -> int:
        total, used = self._memory(handle)
        memory = cabi.target(ref)
        memory.total, memory.used, memory.free, memory.reserved = total, used, total - used, 0
        return SUCCESS

    # --- MIG mode -------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle: Any, current: Any, pending: Any) -> int:
        gpu, _ = self.mig_gpu(self.state(), handle)
        cabi.set_value(current, int(gpu.mig_current))
        cabi.set_value(pending, int(gpu.mig_pending))
        return SUCCESS

    def nvmlDeviceSetMigMode(self, handle: Any, mode: Any, activation: Any) -> int:
        wanted = cabi.uint(mode)
        self.require(wanted in (0, 1), INVALID_ARGUMENT)
        self.mig_gpu(self.state(), handle)
        with self.machine.store.transaction() as state:
            self.check_permission(state)
            gpu, _ = self.mig_gpu(state, handle)
            self.require(wanted == 1 or not gpu.gis, IN_USE)
            gpu.mig_pending = bool(wanted)
            status = activate_pending(state, gpu)
        cabi.set_value(activation, status)
        return SUCCESS

    # --- MIG devices ----------------------------------------------------------------

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any, ref: Any) -> int:
        gpu, model = self.mig_gpu(self.state(), handle)
        cabi.set_value(ref, (model.max_gpu_instances or 7) if gpu.mig_current else 0)
        return SUCCESS

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: Any, ref: Any) -> int:
        gpu, _ = self.mig_gpu(self.state(), handle)
        self.require_mig_enabled(gpu)
        devices = mig_devices(gpu)
        position = cabi.uint(index)
        self.require(0 <= position < len(devices), NOT_FOUND)
        gi_id, ci_id = devices[position]
        cabi.store_handle(ref, Handle(KIND_MIG, gpu.index, gi_id, ci_id))
        return SUCCESS

    def nvmlDeviceIsMigDeviceHandle(self, handle: Any, ref: Any) -> int:
        cabi.set_value(ref, int(cabi.handle_of(handle).kind == KIND_MIG))
        return SUCCESS

    def nvmlDeviceGetGpuInstanceId(self, handle: Any, ref: Any) -> int:
        ref_gi, _ = self.ci_ref(self.state(), handle)
        cabi.set_value(ref, ref_gi.gi.id)
        return SUCCESS

    def nvmlDeviceGetComputeInstanceId(self, handle: Any, ref: Any) -> int:
        _, ci = self.ci_ref(self.state(), handle)
        cabi.set_value(ref, ci.id)
        return SUCCESS

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any, ref: Any) -> int:
        h = cabi.handle_of(handle)
        self.require(h.kind == KIND_MIG, INVALID_ARGUMENT)
        self.ci_ref(self.state(), handle)
        cabi.store_handle(ref, Handle(KIND_GPU, h.gpu))
        return SUCCESS

    # --- processes ------------------------------------------------------------------

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: Any, count: Any, infos: Any) -> int:
        state = self.state()
        h = cabi.handle_of(handle)
        gpu, _ = self.gpu_of(state, h)
        if h.kind == KIND_MIG:
            self.ci_ref(state, handle)
            procs = processes_on(gpu, gi=h.gi, ci=h.ci)
        else:
            procs = processes_on(gpu)

        def write(array: Any, position: int, proc: Any) -> None:
            array[position].pid = proc.pid
            array[position].usedGpuMemory = proc.used_memory_mib * MIB
            array[position].gpuInstanceId = NO_INSTANCE if proc.gi is None else proc.gi
            array[position].computeInstanceId = NO_INSTANCE if proc.ci is None else proc.ci

        cabi.fill_array(infos, count, procs, write)
        if infos is None and procs:
            raise NvmlReturn(7)
        return SUCCESS

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: Any, count: Any, infos: Any) -> int:
        return self.nvmlDeviceGetComputeRunningProcesses_v3(handle, count, infos)


def _largest_profile_mib(model: Any) -> int:
    return max((p.memory_mib or 0 for p in model.gi_profiles), default=0)
