"""The acquire loop: try, maybe create a device, then poll with backoff until a deadline.

Why this module exists: waiting and the create hook must happen *outside* any database
transaction (a sleeping or device-creating process must never hold the write lock), so the store
hands this loop two callables that each run one short transaction of their own (which reads the
current device list, a quick read, inside it). Each attempt
reaps expired and dead leases first, so a waiter picks up a device as soon as its holder dies.

Only the lease store imports this module; it imports ``migctl.errors`` and the lease types.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError, InUseError, MigctlError, UsageError
from migctl.leases.types import Lease, LeaseOwner
from migctl.untrusted import check_label

RETRYABLE = (InUseError, InsufficientResourcesError)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Poll delays: ``initial_s`` growing by ``factor`` up to ``max_s``, with +-``jitter``."""

    initial_s: float = 0.02
    factor: float = 1.5
    max_s: float = 1.0
    jitter: float = 0.25

    def delays(self) -> Callable[[], float]:
        """A function returning the next delay each time it is called."""
        state = {"next": self.initial_s}

        def next_delay() -> float:
            delay = state["next"]
            state["next"] = min(delay * self.factor, self.max_s)
            return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

        return next_delay


def check_request(owner: LeaseOwner, ttl_seconds: float | None, wait_seconds: float) -> None:
    """What every acquire refuses before it starts: a bad TTL or wait, a job name that is not
    1-128 printable characters (others see it in their views)."""
    check_ttl(ttl_seconds)
    if owner.job is not None:
        check_label(owner.job, "job name")
    if wait_seconds < 0:
        raise UsageError(f"wait must be >= 0 s, got {wait_seconds:g}", hint="pass 0 or more")


def check_ttl(ttl_seconds: float | None) -> None:
    if ttl_seconds is not None and not ttl_seconds > 0:
        raise UsageError(
            f"a lease TTL must be > 0 s, got {ttl_seconds:g}",
            hint="pass a positive TTL, or none for a lease that lasts until released",
        )


def acquire_loop(
    attempt: Callable[[], Lease],
    *,
    wait_seconds: float,
    create: Callable[[], Lease | None] | None = None,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Lease:
    """Run ``attempt`` until it returns a lease or ``wait_seconds`` pass.

    ``create`` is called at most once, the first time nothing free matches; it returns a lease
    on a newly created device, or None when it created nothing. On timeout the last error is
    raised again, saying how long it waited.
    """
    deadline = monotonic() + wait_seconds
    next_delay = (backoff or Backoff()).delays()
    create_pending = create is not None
    while True:
        try:
            return attempt()
        except RETRYABLE as exc:
            last_error: MigctlError = exc
            if (
                create is not None
                and create_pending
                and isinstance(exc, InsufficientResourcesError)
            ):
                create_pending = False
                lease = _try_create(create)
                if lease is not None:
                    return lease
        remaining = deadline - monotonic()
        if remaining <= 0:
            if wait_seconds <= 0:
                raise last_error
            raise _after_waiting(last_error, wait_seconds) from last_error
        sleep(min(next_delay(), remaining))


def _try_create(create: Callable[[], Lease | None]) -> Lease | None:
    """The create hook; a device taken by someone else before we leased it is not an error."""
    try:
        return create()
    except InUseError:
        return None


def _after_waiting(error: MigctlError, wait_seconds: float) -> MigctlError:
    return type(error)(
        f"{error.message} (gave up after waiting {wait_seconds:g} s)",
        hint=error.hint,
        context={**error.context, "waited_seconds": wait_seconds},
    )
