"""Lease requests that wait for a device, woken one at a time when a matching device frees up.

Why this module exists: hundreds of clients may wait for a few MIG devices. Polling the lease
store from each of them would turn every release into hundreds of write transactions; holding
a thread per waiter would exhaust the pool. Waiters are asyncio events in arrival order; a
release wakes the *first sleeping* waiter whose request the freed device matches (one release,
one retry). A freed device that no sleeping waiter can take right now (its waiters are busy
retrying) is kept as *unclaimed* and taken by the next matching waiter before it sleeps, so no
wake-up is lost. A newcomer whose request equals an earlier waiter's queues behind it instead of
trying first: waiting is first come, first served. Anything else that may free devices (an
apply, a release by another process) is caught by each waiter's periodic retry (``poll_s``) or
by :meth:`WaitQueue.wake_all`. With demand-driven repartitioning on, requests by size wait
for the repartitioner instead (``server.repartitioner``) but stay listed here, with their
priority, rank and waiting reason, for the dashboard and the metrics.

Soft requests (an MPS share, ``share``) wait in the same queue. Whether a share fits depends
on every share of a parent, not on one freed device, so every lease that ends wakes *every*
sleeping soft waiter (each tries once more; soft waiters are few, and a try is one read). A
lease that ends while a soft waiter is busy trying is not lost either: each soft waiter
remembers how many ends it has seen, and one it has not seen sends it back to try at once.

Only ``migctl.server`` imports this module; it runs on the daemon's event loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from migctl.leases import DeviceCandidate, DeviceRequest, LeaseOwner
from migctl.leases.types import SOFT_PREFIX

MAX_UNCLAIMED = 256


@dataclass(frozen=True, slots=True)
class ShareWanted:
    """What a waiting soft request asks for: an SM share, on ``parent`` or anywhere."""

    percent: int
    parent: str | None = None
    memory_mib: int | None = None

    def describe(self) -> str:
        """``soft 25%`` as lease tables name soft devices (the dashboard's profile column)."""
        return f"soft {self.percent}%"


@dataclass(eq=False)
class Waiter:
    request: DeviceRequest
    owner: LeaseOwner | None = None  # who asks (shown on the dashboard, redacted for others)
    since: float = field(default_factory=time.time)  # when the request arrived (epoch seconds)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: bool = False  # True once a try failed: from then on it waits for a device
    sleeping: bool = False  # True while it sleeps in :meth:`WaitQueue.sleep`
    priority: int = 0  # larger is served first (by demand-driven repartitioning)
    reason: str | None = None  # why it still waits, when the repartitioner knows
    detail: str | None = None  # the reason in words (never names other users)
    rank: int | None = None  # its place in the repartitioner's service order (0 = next)
    share: ShareWanted | None = None  # a soft request (an MPS share); None: a MIG device
    ends_seen: int = 0  # a soft waiter: how many lease ends it has seen (see the module doc)


class WaitQueue:
    """Waiters in arrival order (event-loop only; not thread-safe)."""

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []
        self._unclaimed: list[DeviceCandidate] = []
        self._ends = 0  # leases ended while someone waited (soft waiters compare it)

    def __len__(self) -> int:
        return len(self._waiters)

    def queued(self) -> list[Waiter]:
        """The requests that found nothing free and wait for a device, in service order.

        Those the repartitioner ranked first (by its order), then the others by arrival. A
        snapshot (a copy of the list): metrics scrapes may call it from another thread.
        """
        found = [waiter for waiter in list(self._waiters) if waiter.waiting]
        unranked = len(found)
        return sorted(found, key=lambda w: (unranked if w.rank is None else w.rank, w.since))

    @contextmanager
    def waiting(
        self,
        request: DeviceRequest,
        owner: LeaseOwner | None = None,
        share: ShareWanted | None = None,
    ) -> Iterator[Waiter]:
        """Join the queue for the duration of the block (``share``: a soft request)."""
        waiter = Waiter(request, owner, share=share, ends_seen=self._ends)
        self._waiters.append(waiter)
        try:
            yield waiter
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._unclaimed.clear()

    def ahead(self, waiter: Waiter) -> bool:
        """Whether someone who asked for the same thing waits before ``waiter``."""
        for other in self._waiters:
            if other is waiter:
                return False
            if other.waiting and (other.request, other.share) == (waiter.request, waiter.share):
                return True
        return False

    def device_freed(self, device: DeviceCandidate) -> None:
        """Wake every sleeping soft waiter; wake the first sleeping MIG waiter that ``device``
        suits, or keep it unclaimed."""
        if not self._waiters:
            return
        self._ends += 1
        for waiter in self._waiters:
            if waiter.share is not None and waiter.sleeping:
                waiter.woken.set()
        if device.uuid.startswith(SOFT_PREFIX) and not self._mig_waiters():
            return
        for waiter in self._mig_waiters():
            if waiter.sleeping and not waiter.woken.is_set() and waiter.request.matches(device):
                waiter.woken.set()
                return
        self._unclaimed.append(device)
        del self._unclaimed[:-MAX_UNCLAIMED]

    def wake_all(self) -> None:
        for waiter in self._waiters:
            waiter.woken.set()

    def _mig_waiters(self) -> list[Waiter]:
        return [waiter for waiter in self._waiters if waiter.share is None]

    def _claim(self, waiter: Waiter) -> bool:
        if waiter.share is not None:  # a lease ended since its last try: try again now
            unseen = waiter.ends_seen != self._ends
            waiter.ends_seen = self._ends
            return unseen
        for index, device in enumerate(self._unclaimed):
            if waiter.request.matches(device):
                del self._unclaimed[index]
                return True
        return False

    async def sleep(self, waiter: Waiter, timeout_s: float) -> None:
        """Return at once if an unclaimed device suits ``waiter``; else sleep until woken or
        ``timeout_s`` passes."""
        if self._claim(waiter):
            return
        waiter.sleeping = True
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter.woken.wait(), timeout=max(timeout_s, 0.0))
        finally:
            waiter.sleeping = False
            waiter.woken.clear()
            if waiter.share is not None:  # the try that follows sees every end until now
                waiter.ends_seen = self._ends
