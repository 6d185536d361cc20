"""Shared plumbing of the simulated entry points: state access, handle lookup, checks.

Why this exists: every entry point starts the same way (decode the handle, find the GPU,
its model, the GI or CI it names, check permission or MIG mode), and must fail with the
same return codes the driver uses when any of that is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from migctl.model import GiProfile, GpuModel
from migctl.sim import cabi
from migctl.sim.cabi import KIND_CI, KIND_GI, KIND_GPU, KIND_MIG, Handle, NvmlReturn
from migctl.sim.machine import SimMachine
from migctl.sim.nvml_codes import INVALID_ARGUMENT, NO_PERMISSION, NOT_FOUND, NOT_SUPPORTED
from migctl.sim.state import MachineState, SimComputeInstance, SimGpu, SimGpuInstance


@dataclass
class GiRef:
    """A GI named by a handle, resolved against one state snapshot."""

    state: MachineState
    gpu: SimGpu
    model: GpuModel
    gi: SimGpuInstance
    profile: GiProfile


class OpsBase:
    def __init__(self, machine: SimMachine) -> None:
        self.machine = machine

    def state(self) -> MachineState:
        return self.machine.store.read()

    # --- lookups -------------------------------------------------------------------

    def gpu_of(self, state: MachineState, handle: Handle) -> tuple[SimGpu, GpuModel]:
        gpu = state.gpu(handle.gpu)
        if gpu is None:
            raise NvmlReturn(INVALID_ARGUMENT)
        return gpu, self.machine.model_of(state, gpu)

    def physical(self, state: MachineState, arg: Any) -> tuple[SimGpu, GpuModel]:
        """A physical GPU handle (MIG device handles are refused, as by the driver)."""
        handle = cabi.handle_of(arg)
        if handle.kind != KIND_GPU:
            raise NvmlReturn(INVALID_ARGUMENT)
        return self.gpu_of(state, handle)

    def mig_gpu(self, state: MachineState, arg: Any) -> tuple[SimGpu, GpuModel]:
        """A physical GPU that supports MIG."""
        gpu, model = self.physical(state, arg)
        if not model.mig_capable:
            raise NvmlReturn(NOT_SUPPORTED)
        return gpu, model

    def gi_ref(self, state: MachineState, arg: Any) -> GiRef:
        handle = cabi.handle_of(arg)
        if handle.kind not in (KIND_GI, KIND_CI, KIND_MIG):
            raise NvmlReturn(INVALID_ARGUMENT)
        gpu, model = self.gpu_of(state, handle)
        gi = gpu.gi(handle.gi)
        profile = model.gi_profile(gi.profile_id) if gi is not None else None
        if gi is None or profile is None:
            raise NvmlReturn(INVALID_ARGUMENT)
        return GiRef(state, gpu, model, gi, profile)

    def ci_ref(self, state: MachineState, arg: Any) -> tuple[GiRef, SimComputeInstance]:
        ref = self.gi_ref(state, arg)
        handle = cabi.handle_of(arg)
        if handle.kind not in (KIND_CI, KIND_MIG):
            raise NvmlReturn(INVALID_ARGUMENT)
        ci = ref.gi.ci(handle.ci)
        if ci is None:
            raise NvmlReturn(INVALID_ARGUMENT)
        return ref, ci

    @staticmethod
    def gi_profile_by_id(model: GpuModel, profile_id: Any) -> GiProfile:
        profile = model.gi_profile(cabi.uint(profile_id))
        if profile is None:
            raise NvmlReturn(INVALID_ARGUMENT)
        return profile

    @staticmethod
    def require(condition: bool, code: int) -> None:
        if not condition:
            raise NvmlReturn(code)

    # --- checks --------------------------------------------------------------------

    @staticmethod
    def check_permission(state: MachineState) -> None:
        """GI/CI management and MIG mode need root or the mig-config capability."""
        if state.permissions == "deny" or (state.permissions == "root-only" and os.geteuid() != 0):
            raise NvmlReturn(NO_PERMISSION)

    @staticmethod
    def require_mig_enabled(gpu: SimGpu) -> None:
        if not gpu.mig_current:
            raise NvmlReturn(NOT_SUPPORTED)

    @staticmethod
    def find_gi(gpu: SimGpu, gi_id: int) -> SimGpuInstance:
        gi = gpu.gi(gi_id)
        if gi is None:
            raise NvmlReturn(NOT_FOUND)
        return gi
