"""``migctl run``: lease a device, run a command on it, release the lease however it ends.

Why this exists: the safest way to share MIG devices is to never hand one out by hand. This
runs a command with ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES`` naming a leased MIG
device (plus ``MIGCTL_LEASE_ID``; for a soft device its parent and the MPS client variables,
and a check that the command attached to MPS), passes signals through (see :mod:`.supervise`), returns the
command's exit code, and releases the lease on every exit path: normal exit, failure to start
(127/126), Ctrl-C, SIGTERM, an exception in migctl. Releasing a lease that already ended is no
error.

The lease's holder PID is the command's own PID (see :mod:`.childproc`): if migctl is killed
with SIGKILL, the lease ends once the command ends too (the next acquire or list notices).
If migctl is killed while the command lives on, the lease stays until the command exits (or,
with a TTL, until the TTL passes without migctl renewing it; the orphaned command is then
still running on the device, which NVML and the simulator report as busy, so it is not handed
out again while the processes are visible).

Where the lease comes from is a :class:`Leaser`: :class:`migctl.node.leaser.NodeLeaser` asks
any node (this host's, or the migctl daemon's) through :func:`run_with`. Importers: the CLI and
``migctl.node``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from migctl.errors import MigctlError, UsageError
from migctl.leases import Lease
from migctl.tenancy.childproc import StubChild
from migctl.tenancy.environment import lease_environment
from migctl.tenancy.supervise import WAITED_SIGNALS, blocked_signals, supervise

log = logging.getLogger(__name__)

# Signals that end migctl while it acquires (before the command runs): turned into an exception
# so the stub is killed and a lease already granted is released.
ABORT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(BaseException):
    """migctl got a terminating signal before the command started."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int
    lease: Lease  # as granted
    released: Lease | None  # as ended by this run; None if it had already ended


LeasedHook = Callable[[Lease, int], None]
# started once the command runs; the thread it returns is joined before the lease is released
AttachCheck = Callable[[Lease, int], threading.Thread | None]
ATTACH_JOIN_S = 15.0


class Leaser(Protocol):
    """Where ``migctl run`` gets its lease: acquire for a holder PID, renew, release."""

    @property
    def ttl_seconds(self) -> float | None:
        """Renew the lease while the command runs when set."""
        ...

    def acquire(self, holder_pid: int) -> Lease: ...

    def renew(self, lease: Lease) -> None: ...

    def release(self, lease: Lease) -> Lease | None:
        """End ``lease``; None when it had already ended. Never raises."""
        ...


def run_with(
    leaser: Leaser,
    command: Sequence[str],
    *,
    on_leased: LeasedHook | None = None,
    attach_check: AttachCheck | None = None,
) -> RunResult:
    """Run ``command`` on a leased device; ``on_leased(lease, pid)`` runs before it starts.

    The command gets the lease's environment (:func:`lease_environment`: for a soft device
    the MPS client variables too); ``attach_check(lease, pid)`` runs once it started, for a
    soft lease (it checks, in the background, that the command attached to MPS).

    Raises CommandNotFoundError (127) / CommandNotExecutableError (126) when the command cannot
    start, the leaser's errors when no device can be leased, and :class:`Interrupted` when
    SIGTERM/SIGHUP/SIGQUIT arrive before the command started (the lease is released).
    """
    _require_command(command)
    lease: Lease | None = None
    watcher: threading.Thread | None = None
    child = StubChild.spawn(command)
    try:
        with _abort_on_signals():
            lease = leaser.acquire(child.pid)
            if on_leased is not None:
                on_leased(lease, child.pid)
            with blocked_signals(WAITED_SIGNALS, discard_pending=True):
                child.start(lease_environment(lease))
                if attach_check is not None and lease.soft:
                    watcher = attach_check(lease, child.pid)
                code = supervise(
                    child,
                    heartbeat=_renewer(leaser, lease) if leaser.ttl_seconds else None,
                    heartbeat_interval_s=_renew_interval_s(leaser.ttl_seconds),
                )
    finally:
        child.stop()  # ended but not reaped: a zombie of ours still holds the lease...
        if watcher is not None:
            watcher.join(ATTACH_JOIN_S)  # it ends once the command has: before the release
        try:
            released = leaser.release(lease) if lease is not None else None
        finally:
            child.reap()  # ...until it is released, so a sweep cannot call it a death
    return RunResult(code, lease, released)


def _require_command(command: Sequence[str]) -> None:
    if not command:
        raise UsageError("no command to run", hint="migctl run --profile 1g.10gb -- CMD ARGS...")


@contextlib.contextmanager
def _abort_on_signals() -> Iterator[None]:
    def abort(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, abort) for sig in ABORT_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _renew_interval_s(ttl_seconds: float | None) -> float | None:
    """Renew three times per TTL (at least every 0.5 s for very short TTLs)."""
    return None if ttl_seconds is None else max(0.5, ttl_seconds / 3)


def _renewer(leaser: Leaser, lease: Lease) -> Callable[[], None]:
    state = {"failed": False}

    def renew() -> None:
        if state["failed"]:
            return
        try:
            leaser.renew(lease)
        except MigctlError as error:
            state["failed"] = True
            log.warning(
                "lease %d could not be renewed (%s); the command keeps running",
                lease.lease_id,
                error.message,
            )

    return renew
