"""The NVML backend: the only module that imports pynvml.

Why this exists: it is the seam between migctl and the driver. It runs unchanged over the
real ``libnvidia-ml.so`` and over the simulator (``migctl.sim.SimLibrary`` installed as
``pynvml.nvmlLib``), so every ctypes struct, count-then-fill call and return code here
is exercised by CI exactly as it will run on a server. NVML errors become migctl errors
(``nvml_errors.convert``) with the GPU, profile, placement and a hint.

One NVML library per process (pynvml's library is global): ``guard`` refuses a second one.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pynvml as nv

from migctl.backends.base import ModeChange
from migctl.backends.nvml import guard
from migctl.backends.nvml.errors import IN_USE, INSUFFICIENT_RESOURCES, INVALID_ARGUMENT, convert
from migctl.backends.nvml.live import LiveGeometry
from migctl.catalog import Catalog
from migctl.errors import (
    InvalidStateError,
    NoDriverError,
    NotFoundError,
    ReadOnlyError,
)
from migctl.model import (
    CiProfile,
    ComputeInstance,
    GpuInfo,
    GpuInstance,
    GpuModel,
    GpuProcess,
    MigDevice,
    MigMode,
    Placement,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MIB = 1024 * 1024
NO_INSTANCE = 0xFFFFFFFF
HINT_SIM = (
    "to try migctl without a GPU, use the simulator: `migctl --sim dgx-h100 list` "
    "(or export MIGCTL_SIM=dgx-h100); `migctl sim machines` lists the machines"
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend(LiveGeometry):
    """A :class:`migctl.backends.base.Backend` over pynvml."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        library: object | None = None,
        read_only: bool = False,
        label: str | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self._catalog = catalog
        self._read_only = read_only
        self._label = label
        self._files_dir = files_dir
        self._handles: dict[int, Any] = {}
        self._names: dict[int, str] = {}
        self._live: dict[int, GpuModel] = {}
        self._ci_defs: dict[tuple[int, str], list[CiProfile]] = {}
        self._library = library
        self._closed = False
        guard.claim(self, library)
        nv.nvmlLib = library  # None: pynvml loads libnvidia-ml.so.1 itself
        nv._nvmlGetFunctionPointer_cache.clear()
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            guard.release(self)
            raise NoDriverError(
                f"no NVIDIA driver found ({exc}): NVML could not be initialised", hint=HINT_SIM
            ) from exc

    # --- plumbing -------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def files_dir(self) -> Path | None:
        """A simulated machine's own directory (journal, leases, CDI); None on a real host."""
        return self._files_dir

    @property
    def description(self) -> str:
        version = self.driver_version()
        return self._label or f"NVML {_text(nv.nvmlSystemGetNVMLVersion())}, driver {version}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            nv.nvmlShutdown()
        except nv.NVMLError:
            log.debug("nvmlShutdown failed", exc_info=True)
        finally:
            guard.release(self)

    def call(self, action: str, fn: Callable[..., T], *args: Any, **ctx: Any) -> T:
        """Call a pynvml function; convert an NVMLError into a migctl error."""
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            detail = ctx.pop("detail", None)
            hint = ctx.pop("hint", None)
            raise convert(
                exc.value, str(exc), action, detail=detail, hint=hint, context=ctx
            ) from exc

    def code_of(self, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
        """(0, result) or (NVML error code, None): for probing calls whose failure is normal."""
        try:
            return 0, fn(*args)
        except nv.NVMLError as exc:
            return int(exc.value), None

    def _refuse_if_read_only(self, action: str) -> None:
        if self._read_only:
            raise ReadOnlyError(
                f"{action}: refused, migctl is in read-only mode",
                hint="unset MIGCTL_READ_ONLY / drop --read-only to change the GPU",
            )

    def handle(self, index: int) -> Any:
        if index not in self._handles:
            count = self.call("count GPUs", nv.nvmlDeviceGetCount)
            if not 0 <= index < count:
                raise NotFoundError(
                    f"GPU {index} does not exist",
                    hint=f"this machine has GPUs 0..{count - 1}" if count else "no GPUs found",
                    context={"gpu": index},
                )
            self._handles[index] = self.call(f"GPU {index}", nv.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def where(self, index: int) -> str:
        """``"GPU 2 (NVIDIA H100 80GB HBM3)"`` for messages."""
        if index not in self._names:
            name = _text(self.call(f"GPU {index}", nv.nvmlDeviceGetName, self.handle(index)))
            self._names[index] = f"GPU {index} ({name})"
        return self._names[index]

    # --- GPUs -----------------------------------------------------------------------

    def driver_version(self) -> str:
        return _text(self.call("read driver version", nv.nvmlSystemGetDriverVersion))

    def gpus(self) -> list[GpuInfo]:
        count = self.call("count GPUs", nv.nvmlDeviceGetCount)
        return [self.gpu(i) for i in range(count)]

    def gpu(self, index: int) -> GpuInfo:
        handle = self.handle(index)
        where = f"GPU {index}"
        pci = self.call(where, nv.nvmlDeviceGetPciInfo, handle)
        memory = self.call(where, nv.nvmlDeviceGetMemoryInfo, handle)
        code, modes = self.code_of(nv.nvmlDeviceGetMigMode, handle)
        return GpuInfo(
            index=index,
            name=_text(self.call(where, nv.nvmlDeviceGetName, handle)),
            uuid=_text(self.call(where, nv.nvmlDeviceGetUUID, handle)),
            pci_bus_id=_text(pci.busId),
            pci_device_id=int(pci.pciDeviceId) >> 16,
            memory_total_mib=int(memory.total) // MIB,
            memory_used_mib=int(memory.used) // MIB,
            mig=MigMode(bool(modes[0]), bool(modes[1])) if code == 0 else None,
            pci_subsystem_id=int(pci.pciSubSystemId),
        )

    def mig_mode(self, index: int) -> MigMode | None:
        code, modes = self.code_of(nv.nvmlDeviceGetMigMode, self.handle(index))
        return MigMode(bool(modes[0]), bool(modes[1])) if code == 0 else None

    def _require_mig_on(self, index: int, action: str) -> None:
        mode = self.mig_mode(index)
        if mode is None:
            raise convert(3, "Not Supported", action, detail="this GPU does not support MIG")
        if not mode.current:
            pending = " (enable is pending a GPU reset)" if mode.pending else ""
            raise InvalidStateError(
                f"{action}: MIG mode is off on GPU {index}{pending}",
                hint=f"enable it first: `migctl mode enable -i {index}`",
                context={"gpu": index},
            )

    # --- GPU instances --------------------------------------------------------------

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        mode = self.mig_mode(index)
        if mode is None or not mode.current:
            return []
        result = []
        for profile in self.live_model(index).gi_profiles:
            for gi in self._gi_handles(index, profile.id or 0, profile.max_instances):
                info = self.call(self.where(index), nv.nvmlGpuInstanceGetInfo, gi)
                result.append(
                    GpuInstance(
                        gpu_index=index,
                        id=int(info.id),
                        profile_id=int(info.profileId),
                        profile_name=profile.name,
                        placement=Placement(int(info.placement.start), int(info.placement.size)),
                        memory_mib=profile.memory_mib,
                    )
                )
        return sorted(result, key=lambda g: (g.placement.start, g.id))

    def _gi_handles(self, index: int, profile_id: int, capacity: int) -> list[Any]:
        array = (nv.c_nvmlGpuInstance_t * max(capacity, 1))()
        count = ctypes.c_uint(len(array))
        self.call(
            self.where(index),
            nv.nvmlDeviceGetGpuInstances,
            self.handle(index),
            profile_id,
            array,
            ctypes.byref(count),
        )
        return [array[i] for i in range(count.value)]

    def gi_handle(self, index: int, gi_id: int) -> Any:
        self._require_mig_on(index, f"{self.where(index)}: GPU instance {gi_id}")
        code, gi = self.code_of(nv.nvmlDeviceGetGpuInstanceById, self.handle(index), gi_id)
        if code:
            existing = ", ".join(str(g.id) for g in self.gpu_instances(index)) or "none"
            raise NotFoundError(
                f"{self.where(index)} has no GPU instance {gi_id}",
                hint=f"GPU instances there: {existing} (see `migctl gi list -i {index}`)",
                context={"gpu": index, "gi": gi_id},
            )
        return gi

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> GpuInstance:
        profile = self.live_profile(index, profile_id)
        action = f"{self.where(index)}: cannot create {profile.name} at {placement}"
        self._refuse_if_read_only(action)
        self._require_mig_on(index, action)
        c_placement = nv.c_nvmlGpuInstancePlacement_t(placement.start, placement.size)
        try:
            gi = nv.nvmlDeviceCreateGpuInstanceWithPlacement(
                self.handle(index), profile_id, ctypes.byref(c_placement)
            )
        except nv.NVMLError as exc:
            raise self.create_error(exc, index, profile, placement, action) from exc
        info = self.call(action, nv.nvmlGpuInstanceGetInfo, gi)
        log.info("created GI %s at %s on GPU %d", profile.name, placement, index)
        return GpuInstance(
            index, int(info.id), profile_id, profile.name, placement, profile.memory_mib
        )

    def create_error(
        self, exc: Any, index: int, profile: Any, placement: Placement, action: str
    ) -> Exception:
        code = int(exc.value)
        detail = hint = None
        if code in (INSUFFICIENT_RESOURCES, INVALID_ARGUMENT):
            detail, hint = self.explain_refusal(index, profile, placement)
        ctx = {"gpu": index, "profile": profile.name, "placement": str(placement)}
        return convert(code, str(exc), action, detail=detail, hint=hint, context=ctx)

    def destroy_gpu_instance(self, index: int, gi_id: int) -> None:
        action = f"{self.where(index)}: cannot destroy GPU instance {gi_id}"
        self._refuse_if_read_only(action)
        gi = self.gi_handle(index, gi_id)
        try:
            nv.nvmlGpuInstanceDestroy(gi)
        except nv.NVMLError as exc:
            detail = hint = None
            if int(exc.value) == IN_USE:
                detail, hint = self.explain_gi_in_use(index, gi_id)
            raise convert(
                int(exc.value),
                str(exc),
                action,
                detail=detail,
                hint=hint,
                context={"gpu": index, "gi": gi_id},
            ) from exc
        log.info("destroyed GI %d on GPU %d", gi_id, index)

    # --- compute instances ----------------------------------------------------------

    def compute_instances(self, index: int, gi_id: int) -> list[ComputeInstance]:
        gi = self.gi_handle(index, gi_id)
        result = []
        for profile in self.ci_profile_defs(index, gi_id):
            array = (nv.c_nvmlComputeInstance_t * max(profile.max_instances, 1))()
            count = ctypes.c_uint(len(array))
            self.call(
                self.where(index),
                nv.nvmlGpuInstanceGetComputeInstances,
                gi,
                profile.nvml_index,
                array,
                ctypes.byref(count),
            )
            for position in range(count.value):
                info = self.call(self.where(index), nv.nvmlComputeInstanceGetInfo, array[position])
                result.append(
                    ComputeInstance(
                        index,
                        gi_id,
                        int(info.id),
                        int(info.profileId),
                        profile.name,
                        Placement(int(info.placement.start), int(info.placement.size)),
                    )
                )
        return sorted(result, key=lambda c: (c.placement.start, c.id))

    def create_compute_instance(
        self, index: int, gi_id: int, profile_id: int, placement: Placement
    ) -> ComputeInstance:
        action = (
            f"{self.where(index)}: cannot create compute instance {profile_id} "
            f"at {placement} in GI {gi_id}"
        )
        self._refuse_if_read_only(action)
        gi = self.gi_handle(index, gi_id)
        statuses = {s.profile.nvml_index: s for s in self.ci_profiles(index, gi_id)}
        if profile_id not in statuses:
            raise NotFoundError(
                f"{action}: GPU instance {gi_id} has no compute instance profile {profile_id}",
                hint="available: "
                + ", ".join(f"{s.profile.name} ({i})" for i, s in statuses.items()),
            )
        profile = statuses[profile_id].profile
        action = f"{self.where(index)}: cannot create {profile.name} at {placement} in GI {gi_id}"
        c_placement = nv.c_nvmlComputeInstancePlacement_t(placement.start, placement.size)
        try:
            ci = nv.nvmlGpuInstanceCreateComputeInstanceWithPlacement(
                gi, profile_id, ctypes.byref(c_placement)
            )
        except nv.NVMLError as exc:
            code = int(exc.value)
            hint = None  # other codes (e.g. no permission) keep their default hint
            if code in (INSUFFICIENT_RESOURCES, INVALID_ARGUMENT):
                hint = f"see free compute slices with `migctl profiles -i {index} --ci {gi_id}`"
            ctx: dict[str, object] = {"gpu": index, "gi": gi_id, "profile": profile.name}
            raise convert(code, str(exc), action, hint=hint, context=ctx) from exc
        info = self.call(action, nv.nvmlComputeInstanceGetInfo, ci)
        log.info("created CI %s at %s in GI %d on GPU %d", profile.name, placement, gi_id, index)
        return ComputeInstance(index, gi_id, int(info.id), profile_id, profile.name, placement)

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> None:
        action = f"{self.where(index)}: cannot destroy compute instance {ci_id} of GI {gi_id}"
        self._refuse_if_read_only(action)
        gi = self.gi_handle(index, gi_id)
        code, ci = self.code_of(nv.nvmlGpuInstanceGetComputeInstanceById, gi, ci_id)
        if code:
            raise NotFoundError(
                f"{action}: no such compute instance",
                hint=f"see `migctl ci list -i {index}`",
                context={"gpu": index, "gi": gi_id, "ci": ci_id},
            )
        pids = [p.pid for p in self.processes(index) if p.gi_id == gi_id and p.ci_id == ci_id]
        detail = f"processes {', '.join(map(str, pids))} run on it" if pids else None
        self.call(
            action,
            nv.nvmlComputeInstanceDestroy,
            ci,
            detail=detail,
            hint="stop those processes first" if pids else None,
            gpu=index,
            gi=gi_id,
            ci=ci_id,
            pids=pids,
        )
        log.info("destroyed CI %d in GI %d on GPU %d", ci_id, gi_id, index)

    # --- MIG devices and processes --------------------------------------------------

    def processes(self, index: int) -> list[GpuProcess]:
        code, procs = self.code_of(nv.nvmlDeviceGetComputeRunningProcesses, self.handle(index))
        if code:
            return []  # read paths degrade (e.g. non-root in MIG mode sees no processes)
        result = []
        for proc in procs:
            gi = getattr(proc, "gpuInstanceId", NO_INSTANCE)
            ci = getattr(proc, "computeInstanceId", NO_INSTANCE)
            used = proc.usedGpuMemory
            result.append(
                GpuProcess(
                    pid=int(proc.pid),
                    used_memory_mib=None if used is None else int(used) // MIB,
                    gi_id=None if gi in (None, NO_INSTANCE) else int(gi),
                    ci_id=None if ci in (None, NO_INSTANCE) else int(ci),
                )
            )
        return sorted(result, key=lambda p: p.pid)

    def mig_devices(self, index: int) -> list[MigDevice]:
        mode = self.mig_mode(index)
        if mode is None or not mode.current:
            return []
        where = self.where(index)
        gis = {g.id: g for g in self.gpu_instances(index)}
        ci_names = {
            (gi_id, ci.id): ci.profile_name
            for gi_id in gis
            for ci in self.compute_instances(index, gi_id)
        }
        procs = self.processes(index)
        devices = []
        for handle in self._mig_handles(index):
            gi_id = self.call(where, nv.nvmlDeviceGetGpuInstanceId, handle)
            ci_id = self.call(where, nv.nvmlDeviceGetComputeInstanceId, handle)
            gi = gis.get(gi_id)
            if gi is None:
                continue
            ci_name = ci_names.get((gi_id, ci_id), gi.profile_name)
            memory = self.call(where, nv.nvmlDeviceGetMemoryInfo, handle)
            devices.append(
                MigDevice(
                    uuid=_text(self.call(where, nv.nvmlDeviceGetUUID, handle)),
                    gpu_index=index,
                    gi_id=gi_id,
                    ci_id=ci_id,
                    gi_profile=gi.profile_name,
                    ci_profile=ci_name,
                    placement=gi.placement,
                    memory_total_mib=int(memory.total) // MIB,
                    memory_used_mib=int(memory.used) // MIB,
                    processes=tuple(p for p in procs if p.gi_id == gi_id and p.ci_id == ci_id),
                )
            )
        return sorted(devices, key=lambda d: (d.placement.start, d.gi_id, d.ci_id))

    def _mig_handles(self, index: int) -> list[Any]:
        handle = self.handle(index)
        limit = self.call(self.where(index), nv.nvmlDeviceGetMaxMigDeviceCount, handle)
        found = []
        for position in range(limit):
            code, mig = self.code_of(nv.nvmlDeviceGetMigDeviceHandleByIndex, handle, position)
            if code == 0:
                found.append(mig)
        return found

    # --- MIG mode -------------------------------------------------------------------

    def _mode_error(self, code: int, driver_text: str, index: int, action: str) -> Exception:
        """Blame existing GPU instances only when the driver said IN_USE."""
        detail = hint = None
        instances = self.gpu_instances(index) if code == IN_USE else []
        if instances:
            ids = ", ".join(str(g.id) for g in instances)
            detail = f"GPU instances {ids} still exist"
            hint = f"destroy them first: `migctl gi destroy --all -i {index}`"
        ctx: dict[str, object] = {"gpu": index}
        return convert(code, driver_text, action, detail=detail, hint=hint, context=ctx)

    def set_mig_mode(self, index: int, enabled: bool) -> ModeChange:
        word = "enable" if enabled else "disable"
        action = f"{self.where(index)}: cannot {word} MIG mode"
        self._refuse_if_read_only(action)
        if self.mig_mode(index) is None:
            raise convert(
                3,
                "Not Supported",
                action,
                detail="this GPU does not support MIG",
                hint="MIG GPUs: see `migctl catalog`",
            )
        flag = nv.NVML_DEVICE_MIG_ENABLE if enabled else nv.NVML_DEVICE_MIG_DISABLE
        try:
            status = nv.nvmlDeviceSetMigMode(self.handle(index), flag)
        except nv.NVMLError as exc:
            raise self._mode_error(int(exc.value), str(exc), index, action) from exc
        mode = self.mig_mode(index)
        assert mode is not None
        self._live.pop(index, None)
        self._ci_defs = {k: v for k, v in self._ci_defs.items() if k[0] != index}
        log.info(
            "%sd MIG mode on GPU %d (current %s, pending %s)",
            word,
            index,
            mode.current,
            mode.pending,
        )
        return ModeChange(
            index, enabled, mode.current, mode.pending, self.pending_reason(index, status)
        )
