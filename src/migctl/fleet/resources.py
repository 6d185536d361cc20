"""The fleet's resource vocabulary: what a MIG worker offers and what a task asks.

Why this exists: Dask matches tasks to workers by abstract resources; the fleet speaks
the device-plugin vocabulary so that users, workers and the controller agree:

* a worker on a MIG device offers ``mig-<profile>: 1``, ``gpu-mem-gib`` (the instance's
  memory), ``gpu-sm`` (its SMs) and ``mig-device: 1``;
* a task asks ``mig-<profile>: 1`` (that exact profile), or ``gpu-mem-gib`` / ``gpu-sm``
  with ``mig-device: 1`` (any device that large, one task per device at a time);
* a worker on a soft device (an MPS share of a GPU without MIG) offers ``soft-share: P``
  (its SM share in percent), ``gpu-mem-gib`` (its pinned memory limit) and ``soft-device: 1``;
  a task asks ``soft-share`` (at least that share) with ``soft-device: 1``. Soft requests are
  never MIG demand: the controller does not reshape soft shares.

The worker's memory limit is the instance's memory in bytes, never the whole GPU's.
``demand_of`` turns a task's restrictions back into what the planner plans for.
Pure; imports the model and the planner only. Anyone may import it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from migctl.model import GiProfile
from migctl.planner.packing_model import Demand
from migctl.planner.sizing import Requirement

MIG_PREFIX = "mig-"
MIG_DEVICE = "mig-device"
GPU_MEM_GIB = "gpu-mem-gib"
GPU_SM = "gpu-sm"
SOFT_SHARE = "soft-share"
SOFT_DEVICE = "soft-device"
MIB_BYTES = 1024 * 1024

RestrictionKey = tuple[tuple[str, float], ...]


def profile_resource(profile: str) -> str:
    """``"mig-1g.10gb"``."""
    return MIG_PREFIX + profile


def worker_resources(profile: GiProfile) -> dict[str, float]:
    """What a worker on one MIG device of ``profile`` offers."""
    resources = {profile_resource(profile.name): 1.0, MIG_DEVICE: 1.0}
    if profile.memory_mib is not None:
        # rounded down: a task must never land on a device a little smaller than it asked
        resources[GPU_MEM_GIB] = math.floor(profile.memory_mib * 1000 / 1024) / 1000
    if profile.sm_count is not None:
        resources[GPU_SM] = float(profile.sm_count)
    return resources


def soft_worker_resources(percent: int, memory_mib: int) -> dict[str, float]:
    """What a worker on a soft device offers: its share, its pinned memory limit (rounded
    down, as for MIG devices) and ``soft-device: 1``."""
    return {
        SOFT_SHARE: float(percent),
        GPU_MEM_GIB: math.floor(memory_mib * 1000 / 1024) / 1000,
        SOFT_DEVICE: 1.0,
    }


def worker_memory_limit(profile: GiProfile) -> int:
    """The worker's memory limit in bytes: the instance's memory (0 = unknown: no limit)."""
    return (profile.memory_mib or 0) * MIB_BYTES


def resources_text(resources: Mapping[str, float]) -> str:
    """``dask worker --resources`` form: ``"mig-1g.10gb=1 mig-device=1 ..."`` (sorted)."""
    return " ".join(f"{key}={_number(value)}" for key, value in sorted(resources.items()))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def is_gpu_request(restrictions: Mapping[str, float]) -> bool:
    """Does this task ask for a MIG device at all (other resources, and soft devices, which
    are never reshaped, are not the controller's)?"""
    if SOFT_DEVICE in restrictions or SOFT_SHARE in restrictions:
        return False
    return any(k.startswith(MIG_PREFIX) or k in (GPU_MEM_GIB, GPU_SM) for k in restrictions)


def restriction_key(restrictions: Mapping[str, float]) -> RestrictionKey:
    return tuple(sorted((k, float(v)) for k, v in restrictions.items()))


def demand_of(key: RestrictionKey, count: int) -> Demand:
    """The planner's demand for ``count`` tasks with these restrictions."""
    restrictions = dict(key)
    profiles = tuple(
        sorted(
            k[len(MIG_PREFIX) :]
            for k in restrictions
            if k.startswith(MIG_PREFIX) and k != MIG_DEVICE
        )
    )
    label = resources_text(restrictions)
    if profiles:
        return Demand(count, profiles[:1], label=label)
    memory = restrictions.get(GPU_MEM_GIB)
    sms = restrictions.get(GPU_SM)
    need = Requirement(
        memory_mib=math.ceil(memory * 1024 - 1e-9) if memory else None,
        sms=math.ceil(sms) if sms else None,
    )
    return Demand(count, requirement=need, label=label)


def demands_of(tasks: Iterable[Mapping[str, float]]) -> tuple[list[RestrictionKey], list[Demand]]:
    """GPU tasks grouped by identical restrictions (sorted): keys and planner demands."""
    counts = Counter(restriction_key(t) for t in tasks if is_gpu_request(t))
    keys = sorted(counts)
    return keys, [demand_of(key, counts[key]) for key in keys]
