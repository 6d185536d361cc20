"""Pick the device to lease from the caller's candidates, or say precisely why none fits.

Why this module exists: the choice is pure (candidates + active leases in, one device or an
error out), so it is tested without a database, and the store runs it inside its write
transaction. Rules: a device with an active lease or ``busy=True`` is never chosen; by uuid,
that device or a clear error; otherwise the smallest matching free device (memory, then SMs),
ties by GPU index, then GI id, then CI id.

Only the lease store imports this module; it imports ``migctl.errors`` and the lease types.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    NotFoundError,
)
from migctl.leases.types import DeviceCandidate, DeviceRequest, Lease

WAIT_HINT = "wait for one (acquire with a wait timeout), ask its holder to release it"


def format_time(epoch_seconds: float) -> str:
    """``2026-05-09T07:35:25Z``: lease times in messages and tables."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_unique_uuids(candidates: Sequence[DeviceCandidate]) -> None:
    """The caller's inventory must name each MIG device once."""
    counts = Counter(device.uuid for device in candidates)
    duplicates = sorted(uuid for uuid, count in counts.items() if count > 1)
    if duplicates:
        raise InvalidInputError(
            f"the device list names {', '.join(duplicates)} more than once",
            hint="pass each MIG device once (this is a bug in the caller)",
        )


def choose_device(
    request: DeviceRequest,
    candidates: Sequence[DeviceCandidate],
    active: Mapping[str, Lease],
    reserved: Mapping[str, str] | None = None,
) -> DeviceCandidate:
    """The device to lease for ``request``; ``active`` maps device uuid -> its active lease,
    ``reserved`` device uuid -> why it is kept for something else (a layout's soft shares)."""
    check_unique_uuids(candidates)
    reserved = reserved or {}
    if request.uuid is not None:
        device = _choose_exact(request.uuid, candidates, active)
        if device.uuid in reserved:
            raise InUseError(
                f"{device.describe()} is {reserved[device.uuid]}",
                hint="choose another device, or change the layout",
                context={"uuid": device.uuid},
            )
        return device
    matching = [device for device in candidates if request.matches(device)]
    free = [d for d in matching if not d.busy and d.uuid not in active and d.uuid not in reserved]
    if free:
        return min(free, key=DeviceCandidate.sort_key)
    if not matching:
        raise _nothing_matches(request, candidates, active)
    raise _all_taken(request, matching, candidates, active, reserved)


def _choose_exact(
    uuid: str, candidates: Sequence[DeviceCandidate], active: Mapping[str, Lease]
) -> DeviceCandidate:
    device = next((d for d in candidates if d.uuid == uuid), None)
    if device is None:
        known = ", ".join(sorted(d.uuid for d in candidates)) or "none"
        raise NotFoundError(
            f"no MIG device {uuid} on this machine (MIG devices: {known})",
            hint="list the MIG devices with `migctl list` and copy a MIG-<uuid> from there",
            context={"uuid": uuid},
        )
    lease = active.get(uuid)
    if lease is not None:
        raise InUseError(
            f"{device.describe()} is leased to {lease.describe_holder()}"
            f" since {format_time(lease.created_at)}",
            hint=f"{WAIT_HINT}, or choose another device",
            context={"uuid": uuid, "holder": lease.user, "lease_id": lease.lease_id},
        )
    if device.busy:
        raise InUseError(
            f"{device.describe()} is busy: processes that hold no lease run on it",
            hint="wait for those processes to end, or choose another device",
            context={"uuid": uuid},
        )
    return device


def _nothing_matches(
    request: DeviceRequest, candidates: Sequence[DeviceCandidate], active: Mapping[str, Lease]
) -> InsufficientResourcesError:
    if candidates:
        existing = f"this machine has {_profile_summary(candidates)}"
        free = [d for d in candidates if not d.busy and d.uuid not in active]
        existing += f"; free now: {_profile_summary(free) or 'none'}"
    else:
        existing = "this machine has no MIG devices"
    return InsufficientResourcesError(
        f"no MIG device matches {request.describe()}: {existing}",
        hint="relax the request, or create a matching MIG instance in free slices "
        "(acquire with create)",
        context={"request": request.describe()},
    )


def _all_taken(
    request: DeviceRequest,
    matching: Sequence[DeviceCandidate],
    candidates: Sequence[DeviceCandidate],
    active: Mapping[str, Lease],
    reserved: Mapping[str, str],
) -> InsufficientResourcesError:
    taken = "; ".join(
        _why_taken(device, active, reserved)
        for device in sorted(matching, key=DeviceCandidate.sort_key)
    )
    others_free = [d for d in candidates if d not in matching and not d.busy]
    others_free = [d for d in others_free if d.uuid not in active and d.uuid not in reserved]
    tail = f". Free but not matching: {_profile_summary(others_free)}" if others_free else ""
    holders = sorted({active[d.uuid].user for d in matching if d.uuid in active})
    return InsufficientResourcesError(
        f"all {len(matching)} MIG devices matching {request.describe()} are taken: {taken}{tail}",
        hint=f"{WAIT_HINT}, or create a new MIG instance in free slices (acquire with create)",
        context={"request": request.describe(), "holders": holders},
    )


def _why_taken(
    device: DeviceCandidate, active: Mapping[str, Lease], reserved: Mapping[str, str]
) -> str:
    lease = active.get(device.uuid)
    if lease is not None:
        return f"{device.describe()} leased to {lease.describe_holder()}"
    if device.uuid in reserved:
        return f"{device.describe()} {reserved[device.uuid]}"
    return f"{device.describe()} busy with processes that hold no lease"


def _profile_summary(devices: Iterable[DeviceCandidate]) -> str:
    """``2x 1g.10gb, 1x 3g.40gb`` (sorted by profile name)."""
    counts = Counter(device.profile for device in devices)
    return ", ".join(f"{count}x {profile}" for profile, count in sorted(counts.items()))
