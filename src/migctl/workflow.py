"""The ``nvidia-smi mig`` workflow as library calls: mode, create and destroy GIs and CIs.

Why this exists: the CLI, the scenario tests and later the engine need the same verbs
with the same safety. Differences from nvidia-smi, on purpose:

* ``create_gpu_instances`` places the whole request at once (exact search), so the
  order the user typed never causes "Insufficient Resources"; every create then passes
  an explicit placement to the driver.
* it checks the request before the first change: either every instance is created or,
  when one creation fails anyway, the ones created by this call are destroyed again.
* ``destroy_gpu_instances`` removes a GI's compute instances first, and refuses (naming
  PIDs) when processes run there.
* ``set_mode`` checks every GPU before the first change: a request that names a GPU without
  MIG switches nothing; ``mode_targets`` reads ``all`` as every MIG-capable GPU.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migctl.backends.base import Backend, ModeChange
from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    MigctlError,
    NotFoundError,
    NotSupportedError,
    UsageError,
)
from migctl.geometry import Occupant, fits_instead, placement_refusal
from migctl.model import (
    CiProfile,
    CiProfileStatus,
    ComputeInstance,
    GiProfile,
    GpuInfo,
    GpuInstance,
    GpuModel,
    Placement,
)

if TYPE_CHECKING:
    from migctl.engine.fence import DestroyFence
from migctl.planner.feasibility import diagnose
from migctl.planner.placement import place

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProfileRequest:
    """One ``PROFILE[:START]`` token of ``migctl gi create``."""

    profile: GiProfile
    start: int | None = None


@dataclass(frozen=True, slots=True)
class Created:
    gi: GpuInstance
    ci: ComputeInstance | None


def _find_profile(model: GpuModel, token: str, gpu: int) -> GiProfile:
    if not model.gi_profiles:
        raise NotSupportedError(
            f"GPU {gpu} ({model.nvidia_smi_name}) does not support MIG: it has no GPU instance "
            f"profiles, so it cannot hold {token!r}",
            hint="choose a GPU with MIG (`migctl list` shows MIG on/off; n/a: no MIG)",
            context={"gpu": gpu, "profile": token},
        )
    found = model.gi_profile(int(token)) if token.isdigit() else model.gi_profile(token)
    if found is None:
        names = ", ".join(f"{p.name} ({p.id})" for p in model.gi_profiles)
        raise NotFoundError(
            f"GPU {gpu} ({model.nvidia_smi_name}) has no GPU instance profile {token!r}",
            hint=f"profiles: {names}",
            context={"gpu": gpu, "profile": token},
        )
    return found


def parse_profile_requests(model: GpuModel, text: str, gpu: int) -> list[ProfileRequest]:
    """``"9,19:6,1g.10gb"`` -> requests; names or ids, each with an optional ``:START``."""
    requests = []
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            raise UsageError(f"empty profile in {text!r}", hint="e.g. migctl gi create 9,19,19")
        name, sep, start_text = token.partition(":")
        start = None
        if sep:
            if not start_text.strip().isdigit():
                raise UsageError(
                    f"bad placement start in {token!r}", hint="write PROFILE:START, e.g. 9:4"
                )
            start = int(start_text)
        requests.append(ProfileRequest(_find_profile(model, name.strip(), gpu), start))
    return requests


def _occupants(model: GpuModel, instances: Sequence[GpuInstance]) -> list[Occupant]:
    result = []
    for gi in instances:
        profile = model.gi_profile(gi.profile_id)
        if profile is not None:
            result.append(Occupant(profile, gi.placement))
    return result


def plan_gi_creation(
    model: GpuModel, requests: Sequence[ProfileRequest], existing: Sequence[GpuInstance], gpu: int
) -> list[Occupant]:
    """Placements for every request (fixed starts honoured), or a precise refusal."""
    current = _occupants(model, existing)
    fixed: list[Occupant] = []
    for request in (r for r in requests if r.start is not None):
        assert request.start is not None
        placement = Placement(request.start, request.profile.memory_slices)
        reason = placement_refusal(model, request.profile, placement, current + fixed)
        if reason is not None:
            raise _refusal(
                model, gpu, f"{request.profile.name} at {placement}", reason, current + fixed
            )
        fixed.append(Occupant(request.profile, placement))
    free = [r.profile for r in requests if r.start is None]
    placed = place(model, free, current + fixed)
    if placed is None:
        why = diagnose(model, free, current + fixed)  # counts, media engines, slices, placements
        raise InsufficientResourcesError(
            f"GPU {gpu}: {why.message}",
            hint=why.hint,
            context={"gpu": gpu, "request": ",".join(p.name for p in free)},
        )
    return fixed + placed


def _refusal(
    model: GpuModel, gpu: int, what: str, reason: str, current: Sequence[Occupant]
) -> InsufficientResourcesError:
    held = ", ".join(f"{o.profile.name} at {o.placement}" for o in current) or "nothing"
    options = fits_instead(model, current)
    return InsufficientResourcesError(
        f"GPU {gpu} ({model.nvidia_smi_name}): cannot create {what}: {reason} (occupied: {held})",
        hint=("fits instead: " + "; ".join(options)) if options else "the GPU is full",
        context={"gpu": gpu, "request": what},
    )


def default_ci_profile(
    model: GpuModel, gi_profile: str, backend: Backend, gpu: int, gi_id: int
) -> CiProfile:
    """The CI spanning the whole GI, as the driver lists it (nvidia-smi's ``*``)."""
    for status in backend.ci_profiles(gpu, gi_id):
        if status.profile.is_default:
            return status.profile
    raise NotFoundError(
        f"GPU {gpu}: GPU instance {gi_id} ({gi_profile}) offers no default compute instance"
    )


def create_gpu_instances(
    backend: Backend, gpu: int, requests: Sequence[ProfileRequest], *, with_ci: bool = False
) -> list[Created]:
    """Create every requested GI (and its default CI with ``with_ci``), or none of them."""
    model = backend.live_model(gpu)
    plan = plan_gi_creation(model, requests, backend.gpu_instances(gpu), gpu)
    created: list[Created] = []
    try:
        for occupant in plan:
            gi = backend.create_gpu_instance(gpu, occupant.profile.id or 0, occupant.placement)
            ci = None
            if with_ci:
                ci_profile = default_ci_profile(model, gi.profile_name, backend, gpu, gi.id)
                ci = backend.create_compute_instance(
                    gpu, gi.id, ci_profile.nvml_index, ci_profile.placements[0]
                )
            created.append(Created(gi, ci))
    except MigctlError:
        _undo(backend, gpu, created)
        raise
    return created


def _undo(backend: Backend, gpu: int, created: Sequence[Created]) -> None:
    for item in reversed(created):
        with contextlib.suppress(MigctlError):
            if item.ci is not None:
                backend.destroy_compute_instance(gpu, item.gi.id, item.ci.id)
            backend.destroy_gpu_instance(gpu, item.gi.id)
            log.info("rolled back GI %d on GPU %d", item.gi.id, gpu)


def create_compute_instances(
    backend: Backend, gpu: int, gi_id: int, profiles: Sequence[str] | None
) -> list[ComputeInstance]:
    """Create CIs in a GI by CI profile name or id (default: the full CI), lowest free slices."""
    statuses = backend.ci_profiles(gpu, gi_id)
    if not profiles:
        chosen = [s.profile for s in statuses if s.profile.is_default]
    else:
        chosen = [_find_ci_profile(statuses, token, gpu, gi_id) for token in profiles]
    existing = backend.compute_instances(gpu, gi_id)
    taken = 0
    for ci in existing:
        taken |= ci.placement.mask()
    created: list[ComputeInstance] = []
    for profile in chosen:
        placement = next((p for p in profile.placements if not p.mask() & taken), None)
        if placement is None:
            raise InsufficientResourcesError(
                f"GPU {gpu}: GPU instance {gi_id} has no free compute slices for {profile.name}",
                hint=f"see `migctl profiles -i {gpu} --ci {gi_id}`",
            )
        created.append(backend.create_compute_instance(gpu, gi_id, profile.nvml_index, placement))
        taken |= placement.mask()
    return created


def _find_ci_profile(
    statuses: Sequence[CiProfileStatus], token: str, gpu: int, gi_id: int
) -> CiProfile:
    profiles = [s.profile for s in statuses]
    for profile in profiles:
        if (token.isdigit() and profile.nvml_index == int(token)) or profile.name == token.lower():
            return profile
    names = ", ".join(f"{p.name} ({p.nvml_index})" for p in profiles)
    raise NotFoundError(
        f"GPU {gpu}: GPU instance {gi_id} has no compute instance profile {token!r}",
        hint=f"profiles there: {names}",
    )


def destroy_gpu_instances(
    backend: Backend, gpu: int, gi_ids: Sequence[int] | None, fence: DestroyFence | None = None
) -> list[int]:
    """Destroy GIs (all when ``gi_ids`` is None), their CIs first; refuse busy ones up front:
    processes, and with a ``fence`` (the lease store's) active leases, which it also keeps from
    being granted while each device is destroyed."""
    existing = {g.id: g for g in backend.gpu_instances(gpu)}
    targets = sorted(existing) if gi_ids is None else list(gi_ids)
    for gi_id in targets:
        if gi_id not in existing:
            raise NotFoundError(
                f"GPU {gpu} has no GPU instance {gi_id}",
                hint="GPU instances there: " + (", ".join(map(str, sorted(existing))) or "none"),
            )
    busy = {p.gi_id: p.pid for p in backend.processes(gpu) if p.gi_id in targets}
    if busy:
        detail = ", ".join(f"GI {g} (PID {pid})" for g, pid in sorted(busy.items()))
        raise InUseError(
            f"GPU {gpu}: cannot destroy busy GPU instances: {detail}",
            hint="stop those processes first; nothing was destroyed",
            context={"gpu": gpu, "pids": sorted(busy.values())},
        )
    if fence is not None:
        fence.refuse_leased(gpu, targets)
    for gi_id in targets:
        for ci in backend.compute_instances(gpu, gi_id):
            _destroy_ci(backend, fence, gpu, gi_id, ci.id)
        backend.destroy_gpu_instance(gpu, gi_id)
    return targets


def destroy_compute_instances(
    backend: Backend,
    gpu: int,
    gi_id: int,
    ci_ids: Sequence[int] | None,
    fence: DestroyFence | None = None,
) -> list[int]:
    """Destroy CIs of GI ``gi_id`` (all when ``ci_ids`` is None); with a ``fence``, leased ones
    are refused up front and none is leased while it is destroyed."""
    existing = [c.id for c in backend.compute_instances(gpu, gi_id)]
    targets = existing if ci_ids is None else list(ci_ids)
    if fence is not None:
        fence.refuse_leased(gpu, [gi_id], targets)
    for ci_id in targets:
        _destroy_ci(backend, fence, gpu, gi_id, ci_id)
    return targets


def _destroy_ci(
    backend: Backend, fence: DestroyFence | None, gpu: int, gi_id: int, ci_id: int
) -> None:
    if fence is None:
        backend.destroy_compute_instance(gpu, gi_id, ci_id)
        return
    with fence.destroying(gpu, gi_id, ci_id):
        backend.destroy_compute_instance(gpu, gi_id, ci_id)


@dataclass(frozen=True, slots=True)
class ModeTargets:
    """The GPUs a MIG mode change applies to, and those ``all`` passed over (no MIG)."""

    gpus: list[int]
    skipped: list[GpuInfo]


def mode_targets(chosen: Sequence[GpuInfo], *, every_gpu: bool) -> ModeTargets:
    """Which of ``chosen`` a MIG mode change applies to; refuses before any change.

    ``every_gpu`` (``-i all`` or no ``-i``) means every MIG-capable GPU: the others are
    skipped and reported, and a machine without any is refused. GPUs named one by one must
    all support MIG, else the whole request is refused (nothing is switched).
    """
    capable = [info.index for info in chosen if info.mig is not None]
    others = [info for info in chosen if info.mig is None]
    if every_gpu and not capable:
        raise NotSupportedError(
            "no GPU on this machine supports MIG: " + _names(others),
            hint="MIG GPUs: see `migctl catalog`",
        )
    if not every_gpu and others:
        raise NotSupportedError(
            f"{_names(others)} cannot change MIG mode: no MIG support; "
            "nothing was changed (every GPU named is checked before the first change)",
            hint="leave out the GPUs without MIG, or use -i all (every MIG-capable GPU)",
            context={"gpus": [info.index for info in others]},
        )
    return ModeTargets(capable, others if every_gpu else [])


def _names(infos: Sequence[GpuInfo]) -> str:
    return ", ".join(f"GPU {info.index} ({info.name})" for info in infos)


def set_mode(backend: Backend, gpus: Sequence[int], enabled: bool) -> list[ModeChange]:
    """Enable or disable MIG mode; GPUs that cannot switch now are reported pending.

    Every GPU is checked before the first change: each must support MIG (else none is switched:
    NotSupportedError), and disabling is refused while GPU instances exist (see
    :func:`refuse_disable_with_instances`).
    """
    mode_targets([backend.gpu(gpu) for gpu in gpus], every_gpu=False)
    if not enabled:
        for gpu in gpus:
            refuse_disable_with_instances(backend, gpu)
    return [backend.set_mig_mode(gpu, enabled) for gpu in gpus]


def refuse_disable_with_instances(backend: Backend, gpu: int) -> None:
    """The one rule of ``mode disable``, locally and through the daemon: while GPU instances
    exist it is refused (In Use, exit code 6) naming them; ``--force`` (API: ``"force":
    true``) destroys them as part of the change instead, through the engine's apply."""
    info = backend.gpu(gpu)
    if info.mig is None or not info.mig.current:
        return
    instances = sorted(backend.gpu_instances(gpu), key=lambda gi: gi.id)
    if not instances:
        return
    busy = {p.gi_id for p in backend.processes(gpu)}
    names = ", ".join(
        f"{gi.id} ({gi.profile_name} at {gi.placement}{', processes running' if gi.id in busy else ''})"
        for gi in instances
    )
    raise InUseError(
        f"GPU {gpu} ({info.name}): cannot disable MIG mode: GPU instances {names} still exist",
        hint=f"destroy them first (`migctl gi destroy --all -i {gpu}` on the GPU host), or "
        'add --force (API: "force": true) to destroy them with the change (instances with '
        "processes running are never destroyed)",
        context={"gpu": gpu, "gpu_instances": [gi.id for gi in instances]},
    )
