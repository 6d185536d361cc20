"""Waiting lease requests and the order in which they are served (priority, aging, age).

Why this exists: the daemon's queue of lease requests that no free MIG device could serve must
be ordered the same way by the daemon, by ``decide`` and by the trace replayer, and the order
must be fair: a request's *effective priority* grows by one for every ``aging_seconds`` it has
waited, so an old request eventually overtakes any stream of newcomers whose static priorities
are bounded. Ties go to the older request, then to the smaller id.

A ``Request`` states its size like a lease request does: a device profile name (``1g.10gb``, or
a CI name such as ``1c.3g.40gb``), a minimum memory in MiB, a minimum SM count, or several
(all must hold). No size at all means "any MIG device". Pure values; imported by
``migctl.repartition`` modules and by the daemon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from migctl.errors import InvalidInputError, NotFoundError
from migctl.model import GiProfile, GpuModel, normalize_profile_name
from migctl.planner import Requirement
from migctl.planner.profiles import plain_profiles, size_key
from migctl.planner.sizing import meets
from migctl.repartition.make_room import model_of, model_token


@dataclass(frozen=True, slots=True)
class Request:
    """A lease request waiting for a MIG device."""

    id: str
    arrival_s: float  # epoch seconds (or trace seconds) when it started waiting
    profile: str | None = None  # device profile: a GI name ("3g.40gb") or a CI name
    memory_mib: int | None = None  # at least this much device memory
    sms: int | None = None  # at least this many SMs
    priority: int = 0  # larger is served first
    owner: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidInputError("a request needs a non-empty id", hint="e.g. the lease id")
        for name, value in (("memory_mib", self.memory_mib), ("sms", self.sms)):
            if value is not None and value <= 0:
                raise InvalidInputError(
                    f"request {self.id}: {name} must be positive, not {value}",
                    hint="leave it out to accept any size",
                )
        if not math.isfinite(self.arrival_s):
            raise InvalidInputError(f"request {self.id}: arrival_s must be a finite time")
        if self.profile is not None:
            object.__setattr__(self, "profile", normalize_profile_name(self.profile))

    @property
    def size(self) -> tuple[str | None, int | None, int | None]:
        """What the request asks for; requests of equal size are interchangeable."""
        return (self.profile, self.memory_mib, self.sms)

    def describe(self) -> str:
        parts = []
        if self.profile is not None:
            parts.append(self.profile)
        if self.memory_mib is not None:
            parts.append(f">= {self.memory_mib} MiB")
        if self.sms is not None:
            parts.append(f">= {self.sms} SMs")
        return " and ".join(parts) or "any MIG device"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "arrival_s": self.arrival_s,
            "profile": self.profile,
            "memory_mib": self.memory_mib,
            "sms": self.sms,
            "priority": self.priority,
            "owner": self.owner,
        }


def creatable_profiles(model: GpuModel, request: Request) -> tuple[GiProfile, ...]:
    """GI profiles of ``model`` whose default device serves ``request``, smallest first.

    A named GI profile (``3g.40gb``, or a ``+me`` variant) is the only choice; a CI name
    (``1c.3g.40gb``) cannot be created by reshaping and gives nothing; sizes alone accept the
    plain profiles meeting them.
    """
    return _creatable(model_token(model), request.profile, request.memory_mib, request.sms)


@lru_cache(maxsize=4096)
def _creatable(
    token: int, profile: str | None, memory_mib: int | None, sms: int | None
) -> tuple[GiProfile, ...]:
    model = model_of(token)
    if profile is not None:
        named = model.gi_profile(profile)
        if named is None or not named.placements:
            return ()
        pool = [named]
    else:
        pool = [p for p in plain_profiles(model) if p.placements]
    if memory_mib is None and sms is None:
        return tuple(sorted(pool, key=size_key))
    need = Requirement(memory_mib=memory_mib, sms=sms, include_variants=True)
    return tuple(sorted((p for p in pool if meets(model, p, need)), key=size_key))


def effective_priority(request: Request, now: float, aging_seconds: float) -> int:
    """Static priority plus one per full ``aging_seconds`` waited (0 disables aging)."""
    if aging_seconds <= 0:
        return request.priority
    waited = max(0.0, now - request.arrival_s)
    return request.priority + int(waited // aging_seconds)


def service_order(requests: Iterable[Request], now: float, aging_seconds: float) -> list[Request]:
    """Highest effective priority first, then the oldest, then the smallest id."""
    return sorted(
        requests,
        key=lambda r: (-effective_priority(r, now, aging_seconds), r.arrival_s, r.id),
    )


class WaitQueue:
    """The requests waiting for a device, by id (mutable; the daemon owns one)."""

    def __init__(self, requests: Iterable[Request] = ()) -> None:
        self._requests: dict[str, Request] = {}
        for request in requests:
            self.add(request)

    def add(self, request: Request) -> None:
        if request.id in self._requests:
            raise InvalidInputError(
                f"request {request.id} is already waiting",
                hint="give every request its own id",
                context={"request": request.id},
            )
        self._requests[request.id] = request

    def remove(self, request_id: str) -> Request:
        try:
            return self._requests.pop(request_id)
        except KeyError:
            raise NotFoundError(
                f"no waiting request {request_id}",
                hint="it was granted, cancelled or never queued",
                context={"request": request_id},
            ) from None

    def get(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._requests

    def __len__(self) -> int:
        return len(self._requests)

    def __iter__(self) -> Iterator[Request]:
        """In insertion order; use :meth:`ordered` for the service order."""
        return iter(list(self._requests.values()))

    def ordered(self, now: float, aging_seconds: float) -> list[Request]:
        return service_order(self._requests.values(), now, aging_seconds)
