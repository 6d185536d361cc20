"""Lease requests that wait for a device, woken one at a time when a matching device frees up.

Why this module exists: hundreds of clients may wait for a few MIG devices. Polling the lease
store from each of them would turn every release into hundreds of write transactions; holding
a thread per waiter would exhaust the pool. Waiters are asyncio events in arrival order; a
release wakes the *first* waiter whose request the freed device matches (so waiting is roughly
fair and one release costs one retry); anything else that may free devices (an apply, a
lease that expired or whose holder died, a release by another process) is caught by every
waiter's periodic retry (``poll_s``) or by :meth:`wake_all`.

Only ``migctl.server`` imports this module; it runs on the daemon's event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from migctl.leases import DeviceCandidate, DeviceRequest


@dataclass(eq=False)
class Waiter:
    request: DeviceRequest
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class WaitQueue:
    """Waiters in arrival order (event-loop only; not thread-safe)."""

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []

    def __len__(self) -> int:
        return len(self._waiters)

    @contextmanager
    def waiting(self, request: DeviceRequest) -> Iterator[Waiter]:
        """Join the queue for the duration of the block."""
        waiter = Waiter(request)
        self._waiters.append(waiter)
        try:
            yield waiter
        finally:
            self._waiters.remove(waiter)

    def device_freed(self, device: DeviceCandidate) -> None:
        """Wake the first waiter not yet woken whose request ``device`` matches."""
        for waiter in self._waiters:
            if not waiter.woken.is_set() and waiter.request.matches(device):
                waiter.woken.set()
                return

    def wake_all(self) -> None:
        for waiter in self._waiters:
            waiter.woken.set()


async def wait_turn(waiter: Waiter, timeout_s: float) -> None:
    """Sleep until woken or ``timeout_s`` passes; re-arm for the next wait."""
    with suppress(TimeoutError):
        await asyncio.wait_for(waiter.woken.wait(), timeout=max(timeout_s, 0.0))
    waiter.woken.clear()
