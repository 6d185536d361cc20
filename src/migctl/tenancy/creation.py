"""``--create``: when no free MIG device matches, make one in free slices and lease it.

Why this exists: on a GPU with room, waiting for a device is pointless when a new GPU instance
could be created right now. The lease store calls :func:`device_creator`'s hook (outside any
database transaction) when nothing free matches. Rule: the smallest GI profile that satisfies
the request (memory, then SMs; plain profiles before ``-me``/``+me`` variants), on the lowest
GPU index that is in MIG mode and has room for it; the placement comes from the planner's exact
search (:func:`migctl.planner.placement.place`) and the instance is created with its default
compute instance through :func:`migctl.workflow.create_gpu_instances`.
Importers: ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.engine.soft_parents import sm_counts
from migctl.geometry import Occupant
from migctl.leases import DeviceCandidate, DeviceRequest
from migctl.model import GiProfile, GpuInstance, GpuModel
from migctl.planner.placement import place
from migctl.workflow import ProfileRequest, create_gpu_instances

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewInstance:
    """Where a new MIG device would go: a GI profile on one GPU (placement chosen at creation)."""

    gpu_index: int
    profile: GiProfile


def satisfies(profile: GiProfile, request: DeviceRequest) -> bool:
    """Whether a new GI of ``profile`` (with its full compute instance) meets ``request``."""
    if request.uuid is not None:
        return False
    if request.profile is not None and profile.name != request.profile:
        return False
    if request.min_memory_mib is not None and (profile.memory_mib or 0) < request.min_memory_mib:
        return False
    if request.min_sm_count is None:
        return True
    return profile.sm_count is not None and profile.sm_count >= request.min_sm_count


def _variant_rank(profile: GiProfile) -> int:
    """Plain profiles first; media-less and media-extended variants only when nothing else fits."""
    if profile.is_all_media:
        return 3
    if profile.is_media_extended:
        return 2
    return 1 if profile.is_no_media else 0


def _size_key(profile: GiProfile) -> tuple[int, int, int, str]:
    return (profile.memory_mib or 0, profile.sm_count or 0, _variant_rank(profile), profile.name)


def occupants(model: GpuModel, instances: Sequence[GpuInstance]) -> list[Occupant]:
    """The GIs on a GPU as the placement rules see them."""
    found = [(model.gi_profile(gi.profile_id), gi.placement) for gi in instances]
    return [Occupant(profile, placement) for profile, placement in found if profile is not None]


def choose_new_instance(backend: Backend, request: DeviceRequest) -> NewInstance | None:
    """The smallest fitting GI profile on the lowest GPU with room for it, or None."""
    options: list[tuple[tuple[int, int, int, str], int, GiProfile]] = []
    for info in backend.gpus():
        if info.mig is None or not info.mig.current:
            continue
        model = backend.live_model(info.index)
        current = occupants(model, backend.gpu_instances(info.index))
        for profile in model.gi_profiles:
            if satisfies(profile, request) and place(model, [profile], current) is not None:
                options.append((_size_key(profile), info.index, profile))
    if not options:
        return None
    _, gpu_index, profile = min(options, key=lambda option: (option[0], option[1]))
    return NewInstance(gpu_index, profile)


def create_device(backend: Backend, request: DeviceRequest) -> DeviceCandidate | None:
    """Create the MIG device :func:`choose_new_instance` picks; None when nothing fits."""
    choice = choose_new_instance(backend, request)
    if choice is None:
        return None
    created = create_gpu_instances(
        backend, choice.gpu_index, [ProfileRequest(choice.profile)], with_ci=True
    )
    gi = created[0].gi
    log.info("created %s (GI %d) on GPU %d for a lease", gi.profile_name, gi.id, gi.gpu_index)
    counts = sm_counts(backend, choice.gpu_index)
    for device in backend.mig_devices(choice.gpu_index):
        if device.gi_id == gi.id:
            sms = counts.get((device.gi_profile, device.ci_profile))
            return DeviceCandidate.from_mig_device(device, sm_count=sms)
    return None


def device_creator(backend: Backend) -> Callable[[DeviceRequest], DeviceCandidate | None]:
    """The lease store's ``create_device`` hook for ``backend``."""
    return lambda request: create_device(backend, request)
