"""Soft leases against the live machine: the parents, the grant, the parent's MPS daemon.

Why this exists: a soft device is leased exactly like a MIG device (``lease acquire``, ``run``,
``env``, the daemon), but three things happen around the grant: the parents (GPUs with MIG off,
MIG devices) are read from the hardware inside the lease store's write transaction, so a MIG
device destroyed meanwhile is never shared; the parent's MPS control daemon is made to run
(started, or started again after a crash) before the lease is handed out, and the lease is
given back if it cannot be; and when the last soft lease of a parent ends and no layout keeps
its shares, the daemon is stopped (if no client is still attached). ``migctl run`` checks that
its command really attached to the daemon (:func:`watch_attach`): a client that never attaches
runs without MPS (no share, no limit), and is reported with a warning, never killed.

Importers: ``migctl.tenancy`` and ``migctl.node``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from migctl.backends.base import Backend
from migctl.engine.soft_parents import (
    Parent,
    chosen_parents,
    start_daemon,
    stop_if_idle,
)
from migctl.errors import InvalidStateError, MigctlError, UsageError
from migctl.host import is_alive
from migctl.leases import Lease, LeaseOwner, LeaseStore
from migctl.leases.liveness import read_proc_stat
from migctl.leases.soft import SoftLedger
from migctl.leases.types import SoftGrant
from migctl.mps.admission import AdmissionPolicy
from migctl.mps.control import MpsControl
from migctl.mps.host import MpsHost
from migctl.mps.shares import SoftShare
from migctl.tenancy.selection import DeviceSelection
from migctl.tenancy.soft_choice import SoftWant, choose_share

log = logging.getLogger(__name__)

Warn = Callable[[str], None]


def acquire_soft(
    backend: Backend,
    store: LeaseStore,
    selection: DeviceSelection,
    owner: LeaseOwner,
    host: MpsHost,
    *,
    ttl_seconds: float | None = None,
    wait_seconds: float = 0.0,
) -> Lease:
    """Lease a soft device meeting ``selection`` (``--share``) to ``owner``; its parent's MPS
    daemon runs when this returns. The lease's ``notes`` carry the admission's warnings."""
    selection.check_soft()
    percent = selection.share_percent
    if percent is None:
        raise UsageError("a soft device needs a share", hint="add --share 25%")
    chosen_parents(backend, selection.parent)  # a parent that does not exist: refused now
    want = SoftWant(
        SoftShare(percent, selection.min_memory_mib),
        AdmissionPolicy(selection.oversubscribe, selection.allow_other_user),
        lambda uuid: str(host.paths(uuid).pipe_dir),
        named=selection.parent is not None,
    )
    notes: list[str] = []
    parents: dict[str, Parent] = {}

    def choose(ledger: SoftLedger) -> SoftGrant:
        found = chosen_parents(backend, selection.parent)  # under the lock: what exists now
        grant, warnings = choose_share(ledger, found, want, owner.user)
        notes[:] = warnings
        parents.update({p.uuid: p for p in found})
        return grant

    lease = store.acquire_soft(owner, choose, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds)
    try:
        start_daemon(host, parents[lease.parent_uuid or ""].device)
    except MigctlError:
        store.release(lease.lease_id, user=lease.user)
        raise
    for note in notes:
        log.warning("%s", note)
    return dataclasses.replace(lease, notes=tuple(notes))


def after_release(store: LeaseStore, host: MpsHost | None, lease: Lease) -> None:
    """A soft lease ended: stop its parent's daemon if nothing needs it any more."""
    if host is not None and lease.soft and lease.parent_uuid:
        stop_if_idle(store, host, lease.parent_uuid)


def watch_attach(
    host: MpsHost, lease: Lease, pid: int, warn: Warn | None = None
) -> threading.Thread | None:
    """In the background, check that ``pid`` (or a process it started) attached to the MPS
    daemon of ``lease``'s parent; ``warn`` (default: a logged warning) when it did not."""
    if not lease.soft or not lease.parent_uuid:
        return None
    control = host.control(lease.parent_uuid)
    report = warn or (lambda text: log.warning("%s", text))

    def check() -> None:
        try:
            wait_attached_tree(control, pid, host.attach_timeout_s)
        except MigctlError as missing:
            report(
                f"soft lease {lease.lease_id}: {missing.message}; it runs without its share "
                f"and memory limit ({missing.hint or 'see the MPS log'})"
            )

    thread = threading.Thread(target=check, name=f"mps-attach-{pid}", daemon=True)
    thread.start()
    return thread


def wait_attached_tree(control: MpsControl, pid: int, timeout_s: float) -> int:
    """The MPS server that ``pid`` or one of its descendants attached to (a wrapper such as
    ``sh -c`` counts for what it starts); InvalidStateError when none did in time, or when
    ``pid`` exited first."""
    deadline = time.monotonic() + timeout_s
    while True:
        for server, clients in control.client_pids().items():
            if any(descends_from(client, pid) for client in clients):
                return server
        if not is_alive(pid, None):
            raise InvalidStateError(
                f"PID {pid} ended before it was seen attached to {control.label}",
                hint="a program that does not use CUDA never attaches",
            )
        if time.monotonic() >= deadline:
            raise InvalidStateError(
                f"PID {pid} has not attached to {control.label} after {timeout_s:g} s",
                hint=f"check CUDA_MPS_PIPE_DIRECTORY in its environment; MPS log: "
                f"{control.paths.log_dir}",
            )
        time.sleep(max(control.poll_s, 0.2))


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or one of its descendants (by ``/proc`` parents)."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        stat = read_proc_stat(pid)
        if stat is None:
            return False
        pid, seen = stat.parent_pid, seen + 1
    return pid == ancestor
