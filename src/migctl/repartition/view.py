"""What ``decide`` sees of the machine: per GPU its model, instances, busy flags, idle times.

Why this exists: the decision must not depend on how the caller reads the machine (the
daemon through NVML and the lease store, the replayer from its own model), so both hand in
the same plain values. A MIG device is a compute instance; it is *free* when neither it nor
its GPU instance is busy (processes or a lease). A GPU instance may only be destroyed when it
is idle as a whole and has been for ``min_idle_seconds``; ``idle_since`` says since when each
device has been idle (key ``(gi_id, ci_id)``; ``(gi_id, NO_CI)`` for a GI without CIs). A
device missing from ``idle_since`` is treated as never idle long enough, so a caller that
forgets it only loses reshapes, never work. ``IdleTracker`` keeps those times for a daemon.

Pure values; imports the planner's ``CurrentGpu`` and ``migctl.model``. Imported by
``migctl.repartition`` modules and the daemon.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from migctl.errors import InvalidInputError
from migctl.model import GiProfile, GpuModel
from migctl.planner import CurrentGi, CurrentGpu
from migctl.repartition.make_room import profile_named

NO_CI = -1
DeviceKey = tuple[int, int]  # (gi_id, ci_id)


@dataclass(frozen=True, slots=True)
class GpuView:
    """One GPU: its model, its current instances (busy flags set) and idle times."""

    model: GpuModel
    current: CurrentGpu
    idle_since: Mapping[DeviceKey, float] = field(default_factory=dict)
    uuids: Mapping[DeviceKey, str] = field(default_factory=dict)  # MIG device UUIDs, if known
    reconfiguring: bool = False  # a reshape is being applied: grants only, no new reshape

    @property
    def gpu_index(self) -> int:
        return self.current.gpu_index


@dataclass(frozen=True, slots=True)
class MachineView:
    """Every GPU the daemon owns, and when past reshapes started (for the hourly budget)."""

    gpus: tuple[GpuView, ...]
    reshape_times_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        indices = [g.gpu_index for g in self.gpus]
        if len(set(indices)) != len(indices):
            raise InvalidInputError(
                f"the machine view lists a GPU twice (indices {sorted(indices)})",
                hint="pass each GPU once (this is a bug in the caller)",
            )
        object.__setattr__(self, "gpus", tuple(sorted(self.gpus, key=lambda g: g.gpu_index)))


class GiState(enum.StrEnum):
    """What may happen to a GPU instance now."""

    BUSY = "busy"  # a process or a lease holds it or one of its CIs: never touched
    YOUNG = "young"  # idle, but for less than min_idle_seconds (or since an unknown time)
    ELIGIBLE = "eligible"  # idle long enough: may be destroyed by a reshape


def gi_idle_since(view: GpuView, gi: CurrentGi) -> float | None:
    """When the GI became idle as a whole (its last CI to go idle); None if unknown."""
    keys = [(gi.gi_id, ci.ci_id) for ci in gi.cis] or [(gi.gi_id, NO_CI)]
    times = [view.idle_since.get(key) for key in keys]
    if any(t is None for t in times):
        return None
    return max(t for t in times if t is not None)


def gi_state(view: GpuView, gi: CurrentGi, now: float, min_idle_seconds: float) -> GiState:
    if gi.in_use:
        return GiState.BUSY
    since = gi_idle_since(view, gi)
    if since is None or now - since < min_idle_seconds:
        return GiState.YOUNG
    return GiState.ELIGIBLE


def gi_profile_of(view: GpuView, gi: CurrentGi) -> GiProfile:
    return profile_named(view.model, gi.profile)


@dataclass(frozen=True, slots=True)
class Device:
    """A free MIG device: a CI whose GI and itself are not busy."""

    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str  # the device's name: the CI profile ("1g.10gb", "1c.3g.40gb")
    gi_profile: GiProfile
    sm_count: int | None
    uuid: str | None

    @property
    def memory_mib(self) -> int:
        return self.gi_profile.memory_mib or 0

    def sort_key(self) -> tuple[int, int, int, int, int]:
        """Smallest first (memory, then SMs), ties by GPU index, GI id, CI id (as leases do)."""
        sms = self.sm_count if self.sm_count is not None else 0
        return (self.memory_mib, sms, self.gpu_index, self.gi_id, self.ci_id)


def free_devices(view: GpuView, *, include_busy: bool = False) -> list[Device]:
    """The free MIG devices of one GPU (every device with ``include_busy``), by GI then CI id."""
    devices = []
    for gi in sorted(view.current.gis, key=lambda g: g.gi_id):
        if gi.busy and not include_busy:
            continue
        profile = gi_profile_of(view, gi)
        for ci in sorted(gi.cis, key=lambda c: c.ci_id):
            if ci.busy and not include_busy:
                continue
            devices.append(
                Device(
                    view.gpu_index,
                    gi.gi_id,
                    ci.ci_id,
                    ci.profile,
                    profile,
                    _ci_sm_count(view.model, profile, ci.profile),
                    view.uuids.get((gi.gi_id, ci.ci_id)),
                )
            )
    return devices


def _ci_sm_count(model: GpuModel, gi_profile: GiProfile, ci_profile: str) -> int | None:
    for ci in model.ci_profiles_for(gi_profile.name):
        if ci.name == ci_profile:
            return ci.sm_count
    return gi_profile.sm_count if ci_profile == gi_profile.name else None


class IdleTracker:
    """Remembers since when each MIG device has been idle, from repeated observations.

    Call :meth:`observe` with every fresh ``CurrentGpu`` (busy flags set) and pass the result
    as ``GpuView.idle_since``. A device first seen idle counts from that observation; a busy
    device is forgotten; call :meth:`forget` after reshaping a GPU (GI ids are reused).
    """

    def __init__(self) -> None:
        self._since: dict[tuple[int, int, int], float] = {}

    def observe(self, gpu: CurrentGpu, now: float) -> dict[DeviceKey, float]:
        seen: dict[DeviceKey, float] = {}
        for gi in gpu.gis:
            keys = [(ci.ci_id, ci.busy) for ci in gi.cis] or [(NO_CI, False)]
            for ci_id, busy in keys:
                full = (gpu.gpu_index, gi.gi_id, ci_id)
                if gi.busy or busy:
                    self._since.pop(full, None)
                    continue
                seen[(gi.gi_id, ci_id)] = self._since.setdefault(full, now)
        self._drop_missing(gpu.gpu_index, seen)
        return seen

    def _drop_missing(self, gpu_index: int, seen: Mapping[DeviceKey, float]) -> None:
        gone = [k for k in self._since if k[0] == gpu_index and (k[1], k[2]) not in seen]
        for key in gone:
            del self._since[key]

    def forget(self, gpu_indices: Iterable[int]) -> None:
        wanted = set(gpu_indices)
        for key in [k for k in self._since if k[0] in wanted]:
            del self._since[key]
