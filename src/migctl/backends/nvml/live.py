"""Read a GPU's MIG geometry live from the driver, and explain refusals with it.

Why this exists: on a real GPU the driver is the authority. NVML answers GI profile,
placement and remaining-capacity queries even with MIG mode off, so migctl builds the
GPU's model from the driver (``live_model``), compares it with the catalog, writes it out
for ``migctl catalog capture``, and uses it to say *why* a create was refused and what
fits instead.
"""

from __future__ import annotations

import ctypes
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml as nv

from migctl.catalog import Catalog, normalize_key
from migctl.catalog.derive import derive_ci_profiles
from migctl.errors import NotFoundError
from migctl.geometry import Occupant, fits_instead, placement_refusal
from migctl.model import (
    CiProfile,
    CiProfileStatus,
    ComputeInstance,
    Engines,
    GiProfile,
    GpuInstance,
    GpuModel,
    GpuProcess,
    MigMode,
    Placement,
    ProfileStatus,
    Trust,
    normalize_profile_name,
)

T = TypeVar("T")
GI_PROFILE_INDEX_LIMIT = 0x20
CI_PROFILE_INDEX_LIMIT = 0x10
NOT_SUPPORTED = 3
INVALID_ARGUMENT = 2
IN_USE = 19
RESET_REQUIRED = 16
ARCHITECTURES = {5: "Volta", 6: "Turing", 7: "Ampere", 8: "Ada", 9: "Hopper", 10: "Blackwell"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _placements(fn: Callable[..., Any], owner: Any, profile_id: int) -> tuple[Placement, ...]:
    array = (nv.c_nvmlGpuInstancePlacement_t * 32)()
    count = ctypes.c_uint(len(array))
    fn(owner, profile_id, array, ctypes.byref(count))
    return tuple(Placement(int(array[i].start), int(array[i].size)) for i in range(count.value))


def _ci_placements(gi: Any, profile_id: int) -> tuple[Placement, ...]:
    array = (nv.c_nvmlComputeInstancePlacement_t * 16)()
    count = ctypes.c_uint(len(array))
    nv.nvmlGpuInstanceGetComputeInstancePossiblePlacements(
        gi, profile_id, array, ctypes.byref(count)
    )
    return tuple(Placement(int(array[i].start), int(array[i].size)) for i in range(count.value))


class LiveGeometry:
    """Mixin for NvmlBackend: the methods below rely on its plumbing."""

    _catalog: Catalog
    _live: dict[int, GpuModel]
    _ci_defs: dict[tuple[int, str], list[CiProfile]]

    # provided by NvmlBackend
    def call(self, action: str, fn: Callable[..., T], *args: Any, **ctx: Any) -> T:
        raise NotImplementedError

    def code_of(self, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def handle(self, index: int) -> Any:
        raise NotImplementedError

    def where(self, index: int) -> str:
        raise NotImplementedError

    def driver_version(self) -> str:
        raise NotImplementedError

    def mig_mode(self, index: int) -> MigMode | None:
        raise NotImplementedError

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        raise NotImplementedError

    def gi_handle(self, index: int, gi_id: int) -> Any:
        raise NotImplementedError

    def processes(self, index: int) -> list[GpuProcess]:
        raise NotImplementedError

    def compute_instances(self, index: int, gi_id: int) -> list[ComputeInstance]:
        raise NotImplementedError

    # --- catalog ----------------------------------------------------------------------

    def catalog_model(self, index: int) -> GpuModel | None:
        handle = self.handle(index)
        name = _text(self.call(self.where(index), nv.nvmlDeviceGetName, handle))
        pci = self.call(self.where(index), nv.nvmlDeviceGetPciInfo, handle)
        return self._catalog.for_gpu(name, int(pci.pciDeviceId))

    # --- GI profiles ------------------------------------------------------------------

    def _raw_gi_profiles(self, index: int) -> list[tuple[int, Any]]:
        """(NVML profile index, v2 info) for every profile the GPU supports."""
        handle = self.handle(index)
        found = []
        for position in range(GI_PROFILE_INDEX_LIMIT):
            code, info = self.code_of(nv.nvmlDeviceGetGpuInstanceProfileInfo, handle, position)
            if code == INVALID_ARGUMENT:
                break
            if code == 0:
                found.append((position, info))
        return found

    def _gi_profile(self, index: int, position: int, info: Any) -> GiProfile:
        where = self.where(index)
        placements = self.call(
            where,
            _placements,
            nv.nvmlDeviceGetGpuInstancePossiblePlacements,
            self.handle(index),
            int(info.id),
        )
        return GiProfile(
            name=normalize_profile_name(_text(info.name)),
            nvml_index=position,
            id=int(info.id),
            compute_slices=int(info.sliceCount),
            memory_slices=placements[0].size if placements else 0,
            memory_mib=int(info.memorySizeMB),
            sm_count=int(info.multiprocessorCount),
            engines=Engines(
                int(info.copyEngineCount),
                int(info.decoderCount),
                int(info.encoderCount),
                int(info.jpegCount),
                int(info.ofaCount),
            ),
            max_instances=int(info.instanceCount),
            placements=placements,
            placements_verified=True,
        )

    def live_model(self, index: int) -> GpuModel:
        """The GPU's geometry as the driver reports it (cached per GPU)."""
        if index not in self._live:
            self._live[index] = self._read_live_model(index)
        return self._live[index]

    def _read_live_model(self, index: int) -> GpuModel:
        handle = self.handle(index)
        where = self.where(index)
        name = _text(self.call(where, nv.nvmlDeviceGetName, handle))
        known = self.catalog_model(index)
        profiles = tuple(
            self._gi_profile(index, pos, info) for pos, info in self._raw_gi_profiles(index)
        )
        arch = self._architecture(handle, known)
        pci = self.call(where, nv.nvmlDeviceGetPciInfo, handle)
        memory = self.call(where, nv.nvmlDeviceGetMemoryInfo, handle)
        slices = max((p.end for prof in profiles for p in prof.placements), default=None)
        today = dt.date.today().isoformat()
        return GpuModel(
            key=known.key if known else normalize_key(name),
            name=known.name if known else name,
            nvidia_smi_name=name,
            architecture=arch,
            compute_capability=self._compute_capability(handle),
            pci_device_ids=(int(pci.pciDeviceId) >> 16,),
            memory_slices=slices,
            compute_slices=max((p.compute_slices for p in profiles), default=None),
            max_gpu_instances=max((p.max_instances for p in profiles), default=None),
            total_memory_mib=int(memory.total) // (1024 * 1024),
            sm_count=max((p.sm_count or 0 for p in profiles), default=None),
            driver_min=known.driver_min if known else None,
            gi_profiles=profiles,
            ci_profiles=self._ci_profiles_for(profiles, known, arch),
            trust=Trust.CAPTURED,
            confidence=f"read live from NVML on driver {self.driver_version()} ({today})",
            sources=(f"migctl live NVML read, driver {self.driver_version()}, {today}",),
            aliases=known.aliases if known else (),
            mig_capable=bool(profiles),
        )

    def _architecture(self, handle: Any, known: GpuModel | None) -> str | None:
        code, arch = self.code_of(nv.nvmlDeviceGetArchitecture, handle)
        if code == 0 and int(arch) in ARCHITECTURES:
            return ARCHITECTURES[int(arch)]
        return known.architecture if known else None

    def _compute_capability(self, handle: Any) -> str | None:
        code, cc = self.code_of(nv.nvmlDeviceGetCudaComputeCapability, handle)
        return f"{cc[0]}.{cc[1]}" if code == 0 else None

    @staticmethod
    def _ci_profiles_for(
        profiles: tuple[GiProfile, ...], known: GpuModel | None, arch: str | None
    ) -> tuple[CiProfile, ...]:
        """CI profiles can only be read inside a GI: take the catalog's, else derive them."""
        result: list[CiProfile] = []
        for profile in profiles:
            published = known.ci_profiles_for(profile.name) if known else ()
            result.extend(published or derive_ci_profiles(profile, arch))
        return tuple(result)

    def live_profile(self, index: int, profile_id: int) -> GiProfile:
        model = self.live_model(index)
        profile = model.gi_profile(profile_id)
        if profile is None:
            known = ", ".join(f"{p.name} ({p.id})" for p in model.gi_profiles) or "none (no MIG)"
            raise NotFoundError(
                f"{self.where(index)} has no GPU instance profile {profile_id}",
                hint=f"profiles on this GPU: {known}",
                context={"gpu": index, "profile": profile_id},
            )
        return profile

    def gi_profiles(self, index: int) -> list[ProfileStatus]:
        handle = self.handle(index)
        result = []
        for profile in self.live_model(index).gi_profiles:
            code, free = self.code_of(
                nv.nvmlDeviceGetGpuInstanceRemainingCapacity, handle, profile.id
            )
            result.append(
                ProfileStatus(index, profile, int(free) if code == 0 else 0, profile.max_instances)
            )
        return result

    # --- CI profiles ------------------------------------------------------------------

    def ci_profiles(self, index: int, gi_id: int) -> list[CiProfileStatus]:
        gi = self.gi_handle(index, gi_id)
        result = []
        for profile in self.ci_profile_defs(index, gi_id):
            _, free = self.code_of(
                nv.nvmlGpuInstanceGetComputeInstanceRemainingCapacity, gi, profile.nvml_index
            )
            result.append(
                CiProfileStatus(index, gi_id, profile, int(free or 0), profile.max_instances)
            )
        return result

    def ci_profile_defs(self, index: int, gi_id: int) -> list[CiProfile]:
        """The CI profiles a GI offers; NVML says they do not change while MIG mode holds,
        so they are read once per GI profile and kept."""
        gi_profile = self._gi_profile_of(index, gi_id)
        key = (index, gi_profile.name)
        if key not in self._ci_defs:
            self._ci_defs[key] = self._read_ci_profiles(index, gi_id, gi_profile)
        return self._ci_defs[key]

    def _read_ci_profiles(self, index: int, gi_id: int, gi_profile: GiProfile) -> list[CiProfile]:
        gi = self.gi_handle(index, gi_id)
        found = []
        for position in range(CI_PROFILE_INDEX_LIMIT):
            code, info = self.code_of(
                nv.nvmlGpuInstanceGetComputeInstanceProfileInfo, gi, position, 0
            )
            if code == INVALID_ARGUMENT:
                break
            if code:
                continue
            found.append(
                CiProfile(
                    gi_profile=gi_profile.name,
                    name=normalize_profile_name(_text(info.name)),
                    nvml_index=int(info.id),
                    compute_slices=int(info.sliceCount),
                    sm_count=int(info.multiprocessorCount),
                    max_instances=int(info.instanceCount),
                    placements=self.call(self.where(index), _ci_placements, gi, int(info.id)),
                    is_default=int(info.sliceCount) == gi_profile.compute_slices,
                    derived=False,
                    source="live NVML",
                )
            )
        return found

    def _gi_profile_of(self, index: int, gi_id: int) -> GiProfile:
        gi = next(g for g in self.gpu_instances(index) if g.id == gi_id)
        return self.live_profile(index, gi.profile_id)

    # --- explanations -----------------------------------------------------------------

    def explain_refusal(
        self, index: int, profile: GiProfile, placement: Placement
    ) -> tuple[str, str]:
        """Why ``profile`` cannot go at ``placement`` now, and what fits instead."""
        model = self.live_model(index)
        occupants = [
            Occupant(p, g.placement)
            for g in self.gpu_instances(index)
            if (p := model.gi_profile(g.profile_id)) is not None
        ]
        reason = placement_refusal(model, profile, placement, occupants) or "the driver refused"
        options = fits_instead(model, occupants)
        hint = (
            ("fits instead: " + "; ".join(options))
            if options
            else "no GPU instance fits: the GPU is full"
        )
        return reason, hint

    def explain_gi_in_use(self, index: int, gi_id: int) -> tuple[str, str]:
        pids = [p.pid for p in self.processes(index) if p.gi_id == gi_id]
        cis = list(self._ci_ids(index, gi_id))
        parts = []
        if cis:
            parts.append(f"it still has compute instances {', '.join(map(str, cis))}")
        if pids:
            parts.append(f"processes {', '.join(map(str, pids))} run on it")
        detail = " and ".join(parts) or "in use by another client"
        hint = (
            f"stop processes {', '.join(map(str, pids))} first"
            if pids
            else "destroy its compute instances first: "
            f"`migctl ci destroy -i {index} --gi {gi_id} --all`"
        )
        return detail, hint

    def _ci_ids(self, index: int, gi_id: int) -> list[int]:
        return sorted(ci.id for ci in self.compute_instances(index, gi_id))

    def pending_reason(self, index: int, status: int) -> str | None:
        if status == IN_USE:
            pids = ", ".join(str(p.pid) for p in self.processes(index)) or "another client"
            return f"a GPU reset is needed and the GPU is in use (processes: {pids})"
        if status == RESET_REQUIRED:
            return "a GPU reset is not possible here (e.g. pass-through VM): reboot to apply"
        if status:
            return f"activation returned NVML error {status}"
        return None
