"""An oracle for migctl's mig-parted compatibility: mig-parted's own algorithm, on the simulator.

Why this exists: migctl must judge a mig-parted config as mig-parted does. The oracle is
a line-by-line port of what mig-parted (github.com/NVIDIA/mig-parted, Apache-2.0) does,
written independently of migctl's layout package: which entries apply to which GPU
(``WalkSelectedMigConfigForEachGPU``, ``MatchesDeviceFilter``, ``MatchesDevices``), what
``apply`` does per GPU (``ApplyMigConfig``), and ``SetMigConfig``, which creates the
flattened profiles in order through NVML *without placements* (the driver chooses), puts
a CI into the GI created last when its GI profile is the same and the CI can still be
created there, and tries other orders (``iteratePermutationsUntilSuccess``) when the
hardware refuses one. It drives the simulated driver through pynvml, as mig-parted drives
the real one, and reads the result back as mig-parted's ``GetMigConfig`` does (one count
per compute instance). Only profile names are mapped to NVML ids with the catalog, as
go-nvlib maps them with the driver's profile list. Test-only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pynvml as nv

from migctl.backends.nvml import NvmlBackend
from migctl.model import GpuModel

_KEY = re.compile(r"(?:(\d+)c\.)?(\d+)g\.(\d+)gb(?:([+-])(.+))?")


@dataclass(frozen=True)
class Profile:
    """A flattened mig-devices item: the key, its G/C/attributes and NVML profile ids."""

    key: str
    g: int
    c: int
    attrs: str
    gi_id: int  # NVML_GPU_INSTANCE_PROFILE_* index
    ci_id: int  # NVML_COMPUTE_INSTANCE_PROFILE_* index


def canonical(key: str) -> str:
    """mig-parted's String() of a parsed key: ``1c.1g.5gb`` -> ``1g.5gb``."""
    match = _KEY.fullmatch(key)
    assert match is not None, key
    c, g, gb, sign, attrs = match.groups()
    suffix = f"{sign}{attrs}" if sign else ""
    return f"{g}g.{gb}gb{suffix}" if c is None or c == g else f"{c}c.{g}g.{gb}gb{suffix}"


def profile_on(model: GpuModel, key: str) -> Profile | None:
    """The profile ``key`` names on ``model``; None: not found on this GPU."""
    match = _KEY.fullmatch(canonical(key))
    assert match is not None
    c, g, gb, sign, attrs = match.groups()
    suffix = f"{sign}{attrs}" if sign else ""
    gi = model.gi_profile(f"{g}g.{gb}gb{suffix}")
    if gi is None:
        return None
    cis = model.ci_profiles_for(gi.name)
    if c is None:
        ci = next((x for x in cis if x.is_default), None)
    else:
        ci = next((x for x in cis if x.name == canonical(key)), None)
    if ci is None:
        return None
    return Profile(
        key, int(g), int(c or g), attrs if sign == "+" else "", gi.nvml_index, ci.nvml_index
    )


def flatten(items: Sequence[Profile], counts: Mapping[str, int]) -> list[Profile]:
    """MigConfig.Flatten: one entry per count; G, then C, then attributes, descending."""
    flat = [p for p in sorted(items, key=lambda p: p.key) for _ in range(counts[p.key])]
    flat.sort(key=lambda p: p.attrs, reverse=True)
    flat.sort(key=lambda p: (p.g, p.c), reverse=True)
    return flat


def get_mig_config(backend: NvmlBackend, gpu: int) -> dict[str, int]:
    """GetMigConfig: one count per compute instance, named as mig-parted names it."""
    model = backend.live_model(gpu)
    counts: Counter[str] = Counter()
    for gi in backend.gpu_instances(gpu):
        for ci in backend.compute_instances(gpu, gi.id):
            profile = next(
                p for p in model.ci_profiles_for(gi.profile_name) if p.nvml_index == ci.profile_id
            )
            counts[gi.profile_name if profile.is_default else profile.name] += 1
    return dict(counts)


def clear(backend: NvmlBackend, gpu: int) -> None:
    """ClearMigConfig: destroy every CI, then its GI."""
    for gi in backend.gpu_instances(gpu):
        for ci in backend.compute_instances(gpu, gi.id):
            backend.destroy_compute_instance(gpu, gi.id, ci.id)
        backend.destroy_gpu_instance(gpu, gi.id)


def _create_all(handle: Any, order: Sequence[Profile]) -> bool:
    """The body of SetMigConfig's callback for one order; False where mig-parted errors."""
    last_gi_id, gi = -1, None
    for profile in order:
        gi_info = nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile.gi_id)
        reuse = gi is not None and last_gi_id == profile.gi_id
        last_gi_id = profile.gi_id
        while True:
            if not reuse:
                try:
                    gi = nv.nvmlDeviceCreateGpuInstance(handle, gi_info.id)
                except nv.NVMLError:
                    return False
            try:
                ci_info = nv.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, profile.ci_id, 0)
                nv.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
            except nv.NVMLError:
                if reuse:
                    reuse = False
                    continue
                return False
            break
    return True


def set_mig_config(backend: NvmlBackend, gpu: int, counts: Mapping[str, int]) -> bool:
    """SetMigConfig with iteratePermutationsUntilSuccess; the GPU is cleared on failure."""
    model = backend.live_model(gpu)
    wanted = {key: count for key, count in counts.items() if count > 0}
    items = [profile_on(model, key) for key in wanted]
    if any(item is None for item in items):
        return False  # every order fails on "MIG profile not found on this GPU"
    handle = nv.nvmlDeviceGetHandleByIndex(gpu)

    def attempt(order: list[Profile]) -> bool:
        clear(backend, gpu)
        return _create_all(handle, order)

    if _permute(flatten([i for i in items if i is not None], wanted), attempt, 0):
        return True
    clear(backend, gpu)
    return False


def _permute(items: list[Profile], attempt: Callable[[list[Profile]], bool], i: int) -> bool:
    """iteratePermutationsUntilSuccess: swap distinct profiles into place i, recurse."""
    if i >= len(items):
        return attempt(items)
    for j in range(i, len(items)):
        if all(items[k] is not items[j] for k in range(i, j)):
            items[i], items[j] = items[j], items[i]
            if _permute(items, attempt, i + 1):
                return True
            items[i], items[j] = items[j], items[i]
    return False


# Which entries apply to which GPU ------------------------------------------------------


def _go_device_id(text: str) -> tuple[int, int, int | None]:
    """NewDeviceIDFromString for the filters NVIDIA writes (``0xDDDDVVVV[:0xSSSSVVVV]``)."""
    main, _, sub = text.partition(":")
    try:
        packed = int(main, 16) if main.lower().startswith("0x") else int(main, 10)
        subsystem = (
            (int(sub, 16) if sub.lower().startswith("0x") else int(sub, 10)) if sub else None
        )
    except ValueError:
        return (0, 0, None)
    return (packed >> 16, packed & 0xFFFF, subsystem)


def matches_entry(entry: Mapping[str, Any], index: int, device: int, subsystem: int) -> bool:
    """MatchesDeviceFilter and MatchesDevices for the GPU at ``index``."""
    filters = entry.get("device-filter")
    if isinstance(filters, str):
        filters = [filters] if filters else []
    if filters:
        ids = [_go_device_id(f) for f in filters]
        if not any(
            d == device and v == 0x10DE and (s is None or s == subsystem) for d, v, s in ids
        ):
            return False
    devices = entry["devices"]
    return devices == "all" or index in devices
