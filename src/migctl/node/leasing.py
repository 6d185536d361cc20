"""A lease request (the wire form) -> a lease from this machine's store.

Why this module exists: ``LocalNode.acquire`` and the daemon's waiting acquire both turn a
:class:`~migctl.schemas.leases.LeaseRequest` into the tenancy layer's selection and options and
lease against the live machine (a MIG device, or with a share a soft device); one translation,
used by both. Also the small rules of a ``LocalNode``'s lease calls made by this process itself
(who it is, what a target names, who may revoke).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from migctl.backends.base import Backend
from migctl.leases import DeviceCandidate, Lease, LeaseOwner, LeaseStore
from migctl.mps.host import MpsHost
from migctl.schemas.leases import LeaseRequest
from migctl.tenancy.leasing import AcquireOptions, acquire
from migctl.tenancy.selection import DeviceSelection


def selection_of(request: LeaseRequest) -> DeviceSelection:
    return DeviceSelection(
        profile=request.profile,
        min_memory_mib=request.memory_mib,
        min_sm_count=request.sms,
        device_uuid=request.uuid,
        share_percent=request.share,
        parent=request.parent,
        oversubscribe=request.oversubscribe,
        allow_other_user=request.allow_other_user,
    )


def options_of(
    request: LeaseRequest,
    withheld: Collection[str] = (),
    mps: MpsHost | None = None,
    found: Callable[[], list[DeviceCandidate]] | None = None,
) -> AcquireOptions:
    return AcquireOptions(
        ttl_seconds=request.ttl_seconds,
        wait_seconds=request.wait_seconds,
        create=request.create,
        priority=request.priority,
        withheld=frozenset(withheld),
        mps=mps,
        candidates=found,
    )


def acquire_on(
    backend: Backend,
    store: LeaseStore,
    request: LeaseRequest,
    owner: LeaseOwner,
    *,
    withheld: Collection[str] = (),
    mps: MpsHost | None = None,
    found: Callable[[], list[DeviceCandidate]] | None = None,
    profiles: frozenset[str] | None = None,
) -> Lease:
    """Lease the smallest free MIG device meeting ``request`` to ``owner`` (waiting if asked),
    never one of ``withheld``; or with ``request.share`` a soft device (``mps`` says how this
    machine runs MPS); ``found`` gives the MIG devices (default: the machine read now)."""
    if request.share is None and request.profile is not None:
        refuse_unknown_profile(backend, request.profile, profiles)
    options = options_of(request, withheld, mps, found)
    return acquire(backend, store, selection_of(request), owner, options)


def profile_names(backend: Backend) -> frozenset[str]:
    """Every GI and CI profile name of the machine's MIG-capable GPUs."""
    models = [backend.live_model(info.index) for info in backend.gpus()]
    known = {p.name for m in models if m.mig_capable for p in m.gi_profiles}
    known |= {c.name for m in models if m.mig_capable for c in m.ci_profiles}
    return frozenset(known)


def refuse_unknown_profile(
    backend: Backend, profile: str, names: frozenset[str] | None = None
) -> None:
    """A profile that no GPU here has is refused at once (it can never be free), as the daemon
    refuses it: InvalidInputError naming the profiles there are (``names``: as already read)."""
    from migctl.errors import InvalidInputError
    from migctl.model import normalize_profile_name

    known = profile_names(backend) if names is None else names
    if normalize_profile_name(profile) not in known:
        raise InvalidInputError(
            f"no GPU on this machine has a MIG profile {profile!r}",
            hint=f"profiles here: {', '.join(sorted(known)) or 'none'}",
            context={"profile": profile},
        )


def caller_name() -> str:
    """The user this process runs as (the owner of its leases)."""
    return LeaseOwner.current().user


def refuse_admin_unless_root() -> None:
    import os

    if os.geteuid() != 0:
        from migctl.errors import PermissionDeniedError

        raise PermissionDeniedError(
            "revoking another user's lease here needs root (--admin)",
            hint="run it with sudo, or ask the lease's holder",
        )


def lease_target(target: int | str) -> int | str:
    """A lease id (``7``, ``"7"``) or a MIG device UUID."""
    if isinstance(target, int):
        return target
    text = target.strip()
    return int(text) if text.isdigit() else text
