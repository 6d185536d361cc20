"""Simulated GPU-instance and compute-instance entry points.

Why this exists: see ``library.py``. These are the calls behind ``nvidia-smi mig -lgip,
-lgipp, -cgi, -lgi, -dgi, -lcip, -cci, -lci, -dci``, strict like the hardware: overlapping
placements and exhausted profiles fail with INSUFFICIENT_RESOURCES, a bad placement with
INVALID_ARGUMENT, destroying a GI that has CIs or processes with IN_USE.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from migctl.geometry import gi_id_for, placement_refusal, remaining_capacity
from migctl.model import CiProfile, GiProfile, Placement
from migctl.sim import cabi, rules
from migctl.sim.cabi import KIND_CI, KIND_GI, KIND_GPU, Handle, NvmlReturn
from migctl.sim.machine import processes_on
from migctl.sim.nvml_codes import (
    CI_PROFILE_COUNT,
    GI_PROFILE_COUNT,
    IN_USE,
    INSUFFICIENT_RESOURCES,
    INVALID_ARGUMENT,
    NOT_SUPPORTED,
    SUCCESS,
)
from migctl.sim.ops_base import GiRef, OpsBase
from migctl.sim.state import MachineState, SimGpuInstance

log = logging.getLogger(__name__)


def _mig_uuid(state: MachineState, gpu_uuid: str, gi: int, ci: int) -> str:
    state.uuid_counter += 1
    name = f"{gpu_uuid}/{gi}/{ci}/{state.boot_id}/{state.uuid_counter}"
    return "MIG-" + str(uuid.uuid5(uuid.NAMESPACE_URL, name))


class MigOps(OpsBase):
    # --- GI profiles ----------------------------------------------------------------

    def _gi_profile_at(self, handle: Any, index: Any) -> GiProfile:
        _, model = self.mig_gpu(self.state(), handle)
        position = cabi.uint(index)
        self.require(position < GI_PROFILE_COUNT, INVALID_ARGUMENT)
        profile = next((p for p in model.gi_profiles if p.nvml_index == position), None)
        self.require(profile is not None, NOT_SUPPORTED)
        assert profile is not None
        return profile

    @staticmethod
    def _fill_gi_info(info: Any, profile: GiProfile, with_name: bool) -> None:
        info.id = profile.id or 0
        info.isP2pSupported = 0
        info.sliceCount = profile.compute_slices
        info.instanceCount = profile.max_instances
        info.multiprocessorCount = profile.sm_count or 0
        engines = profile.engines
        info.copyEngineCount = engines.ce or 0
        info.decoderCount = engines.dec or 0
        info.encoderCount = engines.enc or 0
        info.jpegCount = engines.jpeg or 0
        info.ofaCount = engines.ofa or 0
        info.memorySizeMB = profile.memory_mib or 0
        if with_name:
            info.name = f"MIG {profile.name}".encode()

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: Any, index: Any, ref: Any) -> int:
        self._fill_gi_info(cabi.target(ref), self._gi_profile_at(handle, index), False)
        return SUCCESS

    def nvmlDeviceGetGpuInstanceProfileInfoV(self, handle: Any, index: Any, ref: Any) -> int:
        self._fill_gi_info(cabi.target(ref), self._gi_profile_at(handle, index), True)
        return SUCCESS

    def nvmlDeviceGetGpuInstancePossiblePlacements_v2(
        self, handle: Any, profile_id: Any, array: Any, count: Any
    ) -> int:
        _, model = self.mig_gpu(self.state(), handle)
        profile = self.gi_profile_by_id(model, profile_id)

        def write(items: Any, position: int, placement: Placement) -> None:
            items[position].start, items[position].size = placement.start, placement.size

        cabi.fill_array(array, count, list(profile.placements), write)
        return SUCCESS

    def nvmlDeviceGetGpuInstanceRemainingCapacity(
        self, handle: Any, profile_id: Any, ref: Any
    ) -> int:
        gpu, model = self.mig_gpu(self.state(), handle)
        profile = self.gi_profile_by_id(model, profile_id)
        cabi.set_value(ref, remaining_capacity(model, profile, rules.occupants(model, gpu)))
        return SUCCESS

    # --- GI lifecycle ---------------------------------------------------------------

    def _create_gi(
        self, handle: Any, profile_id: Any, placement: Placement | None, out: Any
    ) -> int:
        with self.machine.store.transaction() as state:
            self.check_permission(state)
            gpu, model = self.mig_gpu(state, handle)
            self.require_mig_enabled(gpu)
            profile = self.gi_profile_by_id(model, profile_id)
            self.require(_only_mig(gpu), IN_USE)
            current = rules.occupants(model, gpu)
            if placement is None:
                placement = rules.auto_placement(model, profile, current)
                self.require(placement is not None, INSUFFICIENT_RESOURCES)
                assert placement is not None
            elif placement not in profile.placements:
                raise NvmlReturn(INVALID_ARGUMENT)
            self.require(
                placement_refusal(model, profile, placement, current) is None,
                INSUFFICIENT_RESOURCES,
            )
            gi = SimGpuInstance(
                gi_id_for(model, placement), profile.id or 0, placement.start, placement.size
            )
            gpu.gis.append(gi)
            gpu.gis.sort(key=lambda g: g.id)
        log.info("sim: created GI %s at %s on GPU %d", profile.name, placement, gpu.index)
        cabi.store_handle(out, Handle(KIND_GI, gpu.index, gi.id))
        return SUCCESS

    def nvmlDeviceCreateGpuInstance(self, handle: Any, profile_id: Any, out: Any) -> int:
        return self._create_gi(handle, profile_id, None, out)

    def nvmlDeviceCreateGpuInstanceWithPlacement(
        self, handle: Any, profile_id: Any, placement: Any, out: Any
    ) -> int:
        raw = cabi.target(placement)
        return self._create_gi(handle, profile_id, Placement(int(raw.start), int(raw.size)), out)

    def nvmlGpuInstanceDestroy(self, handle: Any) -> int:
        with self.machine.store.transaction() as state:
            self.check_permission(state)
            ref = self.gi_ref(state, handle)
            self.require(not ref.gi.cis and not processes_on(ref.gpu, gi=ref.gi.id), IN_USE)
            ref.gpu.gis.remove(ref.gi)
        return SUCCESS

    def nvmlDeviceGetGpuInstances(
        self, handle: Any, profile_id: Any, array: Any, count: Any
    ) -> int:
        gpu, model = self.mig_gpu(self.state(), handle)
        profile = self.gi_profile_by_id(model, profile_id)
        self.require_mig_enabled(gpu)
        found = [g for g in gpu.gis if g.profile_id == profile.id]

        def write(items: Any, position: int, gi: SimGpuInstance) -> None:
            items[position] = cabi.handle_value(items._type_, Handle(KIND_GI, gpu.index, gi.id))

        cabi.fill_array(array, count, found, write)
        return SUCCESS

    def nvmlDeviceGetGpuInstanceById(self, handle: Any, gi_id: Any, out: Any) -> int:
        gpu, _ = self.mig_gpu(self.state(), handle)
        self.require_mig_enabled(gpu)
        gi = self.find_gi(gpu, cabi.uint(gi_id))
        cabi.store_handle(out, Handle(KIND_GI, gpu.index, gi.id))
        return SUCCESS

    def nvmlGpuInstanceGetInfo(self, handle: Any, ref: Any) -> int:
        gi_ref = self.gi_ref(self.state(), handle)
        info = cabi.target(ref)
        info.device = cabi.handle_value(
            cabi.field_type(info, "device"), Handle(KIND_GPU, gi_ref.gpu.index)
        )
        info.id, info.profileId = gi_ref.gi.id, gi_ref.gi.profile_id
        info.placement.start, info.placement.size = gi_ref.gi.start, gi_ref.gi.size
        return SUCCESS

    # --- CI profiles ----------------------------------------------------------------

    def _ci_profile_at(self, handle: Any, index: Any) -> tuple[GiRef, CiProfile]:
        ref = self.gi_ref(self.state(), handle)
        position = cabi.uint(index)
        self.require(position < CI_PROFILE_COUNT, INVALID_ARGUMENT)
        profile = rules.ci_profile_by_index(ref.model, ref.profile, position)
        self.require(profile is not None, NOT_SUPPORTED)
        assert profile is not None
        return ref, profile

    def _ci_profile_by_id(self, ref: GiRef, profile_id: Any) -> CiProfile:
        profile = rules.ci_profile_by_id(ref.model, ref.profile, cabi.uint(profile_id))
        self.require(profile is not None, INVALID_ARGUMENT)
        assert profile is not None
        return profile

    @staticmethod
    def _fill_ci_info(info: Any, ref: GiRef, profile: CiProfile, with_name: bool) -> None:
        info.id = profile.nvml_index
        info.sliceCount = profile.compute_slices
        info.instanceCount = profile.max_instances
        info.multiprocessorCount = profile.sm_count or 0
        engines = ref.profile.engines
        info.sharedCopyEngineCount = engines.ce or 0
        info.sharedDecoderCount = engines.dec or 0
        info.sharedEncoderCount = engines.enc or 0
        info.sharedJpegCount = engines.jpeg or 0
        info.sharedOfaCount = engines.ofa or 0
        if with_name:
            info.name = f"MIG {profile.name}".encode()

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, handle: Any, index: Any, engine: Any, ref: Any
    ) -> int:
        gi_ref, profile = self._ci_profile_at(handle, index)
        self._fill_ci_info(cabi.target(ref), gi_ref, profile, False)
        return SUCCESS

    def nvmlGpuInstanceGetComputeInstanceProfileInfoV(
        self, handle: Any, index: Any, engine: Any, ref: Any
    ) -> int:
        gi_ref, profile = self._ci_profile_at(handle, index)
        self._fill_ci_info(cabi.target(ref), gi_ref, profile, True)
        return SUCCESS

    def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(
        self, handle: Any, profile_id: Any, ref: Any
    ) -> int:
        gi_ref = self.gi_ref(self.state(), handle)
        profile = self._ci_profile_by_id(gi_ref, profile_id)
        count = rules.ci_remaining_capacity(gi_ref.model, gi_ref.profile, gi_ref.gi, profile)
        cabi.set_value(ref, count)
        return SUCCESS

    def nvmlGpuInstanceGetComputeInstancePossiblePlacements(
        self, handle: Any, profile_id: Any, array: Any, count: Any
    ) -> int:
        gi_ref = self.gi_ref(self.state(), handle)
        profile = self._ci_profile_by_id(gi_ref, profile_id)

        def write(items: Any, position: int, placement: Placement) -> None:
            items[position].start, items[position].size = placement.start, placement.size

        cabi.fill_array(array, count, list(profile.placements), write)
        return SUCCESS

    # --- CI lifecycle ---------------------------------------------------------------

    def _create_ci(
        self, handle: Any, profile_id: Any, placement: Placement | None, out: Any
    ) -> int:
        with self.machine.store.transaction() as state:
            self.check_permission(state)
            ref = self.gi_ref(state, handle)
            profile = self._ci_profile_by_id(ref, profile_id)
            if placement is None:
                free = rules.ci_free_placements(ref.model, ref.profile, ref.gi, profile)
                self.require(bool(free), INSUFFICIENT_RESOURCES)
                placement = free[0]
            elif placement not in profile.placements:
                raise NvmlReturn(INVALID_ARGUMENT)
            refusal = rules.ci_refusal(ref.model, ref.profile, ref.gi, profile, placement)
            self.require(refusal is None, INSUFFICIENT_RESOURCES)
            ci = rules.new_ci(ref.gi, profile, placement, "")
            ci.uuid = _mig_uuid(state, ref.gpu.uuid, ref.gi.id, ci.id)
        cabi.store_handle(out, Handle(KIND_CI, ref.gpu.index, ref.gi.id, ci.id))
        return SUCCESS

    def nvmlGpuInstanceCreateComputeInstance(self, handle: Any, profile_id: Any, out: Any) -> int:
        return self._create_ci(handle, profile_id, None, out)

    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
        self, handle: Any, profile_id: Any, placement: Any, out: Any
    ) -> int:
        raw = cabi.target(placement)
        return self._create_ci(handle, profile_id, Placement(int(raw.start), int(raw.size)), out)

    def nvmlComputeInstanceDestroy(self, handle: Any) -> int:
        with self.machine.store.transaction() as state:
            self.check_permission(state)
            ref, ci = self.ci_ref(state, handle)
            self.require(not processes_on(ref.gpu, gi=ref.gi.id, ci=ci.id), IN_USE)
            ref.gi.cis.remove(ci)
        return SUCCESS

    def nvmlGpuInstanceGetComputeInstances(
        self, handle: Any, profile_id: Any, array: Any, count: Any
    ) -> int:
        gi_ref = self.gi_ref(self.state(), handle)
        profile = self._ci_profile_by_id(gi_ref, profile_id)
        found = [c for c in gi_ref.gi.cis if c.profile_id == profile.nvml_index]
        gpu_index, gi_id = gi_ref.gpu.index, gi_ref.gi.id

        def write(items: Any, position: int, ci: Any) -> None:
            items[position] = cabi.handle_value(
                items._type_, Handle(KIND_CI, gpu_index, gi_id, ci.id)
            )

        cabi.fill_array(array, count, found, write)
        return SUCCESS

    def nvmlGpuInstanceGetComputeInstanceById(self, handle: Any, ci_id: Any, out: Any) -> int:
        gi_ref = self.gi_ref(self.state(), handle)
        ci = gi_ref.gi.ci(cabi.uint(ci_id))
        self.require(ci is not None, 6)
        assert ci is not None
        cabi.store_handle(out, Handle(KIND_CI, gi_ref.gpu.index, gi_ref.gi.id, ci.id))
        return SUCCESS

    def nvmlComputeInstanceGetInfo_v2(self, handle: Any, ref: Any) -> int:
        gi_ref, ci = self.ci_ref(self.state(), handle)
        info = cabi.target(ref)
        gpu_index, gi_id = gi_ref.gpu.index, gi_ref.gi.id
        info.device = cabi.handle_value(
            cabi.field_type(info, "device"), Handle(KIND_GPU, gpu_index)
        )
        info.gpuInstance = cabi.handle_value(
            cabi.field_type(info, "gpuInstance"), Handle(KIND_GI, gpu_index, gi_id)
        )
        info.id, info.profileId = ci.id, ci.profile_id
        info.placement.start, info.placement.size = ci.start, ci.size
        return SUCCESS


def _only_mig(gpu: Any) -> bool:
    """True when every live process on the GPU runs on a MIG device (none holds it whole)."""
    return all(p.gi is not None for p in processes_on(gpu))
