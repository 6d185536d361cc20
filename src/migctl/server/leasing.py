"""Leases through the daemon: acquire (waiting without a thread), release, renew, read.

Why this module exists: the REST routes and demand-driven repartitioning need one object that
turns a principal and a request into calls of the daemon's ``LocalNode`` (``acquire`` with the
principal as owner, ``release`` and ``renew`` as that user): the same lease rules as everywhere,
and the lease store guarantees that no device is granted twice. This layer adds who the owner
is (the kernel-verified socket user or a token's owner), waiting that costs no thread (each try
is an ``acquire`` that does not wait, see ``waiters``), provisional grants (``provisional``),
``create`` for admins only (it makes a GPU instance), wake-ups when devices free
up (a release through the daemon wakes the first matching waiter, and every waiting soft
request; a reaper task ends expired and dead-holder leases every second and wakes theirs),
soft requests (MPS shares) waiting in the same queue, priorities (users up to
:data:`USER_MAX_PRIORITY`), handing requests by size to the repartitioner when it is on (an
:class:`Arbiter`: ``server.repartitioner``), privacy (a user's error messages never name
other users' jobs) and, at daemon start, ending leases whose device no longer exists.

Only ``migctl.server`` imports this module; it uses the node, ``migctl.leases`` and ``migctl.host``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    InvalidStateError,
    MigctlError,
    NotFoundError,
    PermissionDeniedError,
)
from migctl.host import process_facts
from migctl.leases import DeviceCandidate, DeviceRequest, Lease, LeaseOwner
from migctl.model import normalize_profile_name
from migctl.schemas.leases import LeaseRequest
from migctl.server.auth import Principal
from migctl.server.gpu import GpuAccess
from migctl.server.provisional import Provisional
from migctl.server.threads import Blocking
from migctl.server.waiters import ShareWanted, Waiter, WaitQueue

log = logging.getLogger(__name__)
RETRYABLE = (InUseError, InsufficientResourcesError)
USER_MAX_PRIORITY = 10  # admins may ask for up to LeaseRequest's bound (1000)


class Arbiter(Protocol):
    """Who serves waiting requests when demand-driven repartitioning is on."""

    def has_waiting(self) -> bool: ...

    def kick(self) -> None: ...

    async def wait_for(
        self,
        waiter: Waiter,
        body: LeaseRequest,
        owner: LeaseOwner,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> Lease: ...


VANISHED_BY = "migctl-daemon: device no longer exists"


def freed_device(lease: Lease) -> DeviceCandidate:
    """The device a lease held, as a candidate (to wake a waiter it matches)."""
    return DeviceCandidate(
        uuid=lease.uuid,
        gpu_index=lease.gpu_index,
        gi_id=lease.gi_id,
        ci_id=lease.ci_id,
        profile=lease.profile,
        memory_mib=lease.memory_mib,
        sm_count=lease.sm_count,
    )


class LeaseService:
    """Lease operations on behalf of principals, through the daemon's node."""

    def __init__(self, gpu: GpuAccess, blocking: Blocking, *, poll_s: float = 1.0) -> None:
        self.gpu = gpu
        self.node = gpu.node
        self.store = gpu.node.store
        self.blocking = blocking
        self.poll_s = poll_s
        self.waits = WaitQueue()
        self.arbiter: Arbiter | None = None  # the repartitioner, when it is on
        self.withheld: frozenset[str] = frozenset()  # devices a reshape is about to destroy
        self.provisional: Provisional | None = None  # grants stay provisional until delivered

    # -- acquire ---------------------------------------------------------------------------

    def device_request(self, body: LeaseRequest) -> DeviceRequest:
        """What ``body`` waits for (a profile no GPU here has is refused: it never comes)."""
        profile = None if body.profile is None else normalize_profile_name(body.profile)
        if profile is not None and profile not in self.gpu.known_profiles():
            known = ", ".join(sorted(self.gpu.known_profiles())) or "none"
            raise InvalidInputError(
                f"no GPU on this machine has a MIG profile {body.profile!r}",
                hint=f"profiles here: {known}",
                context={"profile": body.profile},
            )
        return DeviceRequest(
            uuid=body.uuid, profile=profile, min_memory_mib=body.memory_mib, min_sm_count=body.sms
        )

    def owner(self, principal: Principal, body: LeaseRequest) -> LeaseOwner:
        if body.pid is not None:
            _check_pid(principal, body.pid)
        uid = principal.uid if principal.uid is not None else -1
        return LeaseOwner(
            user=principal.name, uid=uid, host=self.store.hostname, job=body.job, pid=body.pid
        )

    def grant(self, body: LeaseRequest, owner: LeaseOwner) -> Lease:
        """Lease a device now (no waiting), provisionally (see ``provisional``): every grant
        goes through here, and through ``LocalNode.acquire`` (blocking: a worker thread)."""
        provisional = self.provisional
        ttl = body.ttl_seconds if provisional is None else provisional.ttl(body.ttl_seconds)
        now = body.model_copy(update={"wait_seconds": 0.0, "ttl_seconds": ttl})
        with self.gpu.locked() as node:  # the node reads the devices inside the transaction
            lease = node.acquire(now, owner=owner, withheld=self.withheld)
            if provisional is not None:
                provisional.listed(lease)
        return lease

    async def settle(self, lease_id: int, ttl_seconds: float | None, *, delivered: bool) -> None:
        """After the answer: confirm the lease with the TTL asked for, or, when the client's
        connection was gone before it, release it (``provisional``, step 3)."""
        provisional = self.provisional
        if provisional is None:
            return
        try:
            if delivered:
                await self.blocking.lease(provisional.confirm, lease_id, ttl_seconds)
                return
            ended = await self.blocking.lease(provisional.withdraw, lease_id)
        except MigctlError as error:
            log.error("lease %d: could not settle it after its answer: %s", lease_id, error)
            return
        if ended is not None:
            self.freed(ended)

    async def acquire(
        self,
        principal: Principal,
        body: LeaseRequest,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> Lease:
        """Lease a device; with ``wait_seconds`` wait for one (``gone``: the client left)."""
        _check_create(principal, body)
        if body.share is not None:  # a soft device (an MPS share)
            return await self._acquire_soft(principal, body, gone)
        request, owner = self.device_request(body), self.owner(principal, body)
        priority = priority_of(principal, body)
        arbiter = self.arbiter
        if arbiter is not None and request.uuid is None and body.wait_seconds > 0:
            waiting = (request, owner, priority)
            return await self._acquire_arbitrated(arbiter, principal, body, waiting, gone)
        with self.waits.waiting(request, owner) as waiter:
            waiter.priority = priority
            return await self._wait_in_queue(waiter, principal, body, owner, gone)

    async def _wait_in_queue(
        self,
        waiter: Waiter,
        principal: Principal,
        body: LeaseRequest,
        owner: LeaseOwner,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> Lease:
        """Try now (unless an equal request waits before), then at each wake-up and every
        ``poll_s`` until ``body.wait_seconds`` pass or the client leaves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + body.wait_seconds
        last: MigctlError | None = None
        if not (body.wait_seconds > 0 and self.waits.ahead(waiter)):
            try:
                return await self._attempt(body, owner)
            except RETRYABLE as exc:
                last = exc
        waiter.waiting = True
        while (remaining := deadline - loop.time()) > 0:
            if gone is not None and await gone():
                break
            await self.waits.sleep(waiter, min(remaining, self.poll_s))
            try:
                return await self._attempt(body, owner)
            except RETRYABLE as exc:
                last = exc
        if last is None:  # the client left before its first try
            raise InvalidStateError("the client went away while waiting for a device")
        mig = waiter.share is None  # reshaping (off here) would concern MIG devices only
        error = _after_waiting(last, body.wait_seconds, reshaping_off=mig)
        raise await self._private(principal, error)

    async def _attempt(self, body: LeaseRequest, owner: LeaseOwner) -> Lease:
        return await self.blocking.lease(self.grant, body, owner)  # the store's one thread

    async def _acquire_soft(
        self,
        principal: Principal,
        body: LeaseRequest,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> Lease:
        """A soft device now, or (``wait_seconds``) when shares free up: in the same queue as
        MIG requests, woken whenever a lease ends (``waiters``)."""
        owner = self.owner(principal, body)
        assert body.share is not None
        share = ShareWanted(body.share, body.parent, body.memory_mib)
        try:
            priority = priority_of(principal, body)
            with self.waits.waiting(DeviceRequest(), owner, share=share) as waiter:
                waiter.priority = priority
                return await self._wait_in_queue(waiter, principal, body, owner, gone)
        except MigctlError as error:
            raise await self._private(principal, error) from None

    async def _acquire_arbitrated(
        self,
        arbiter: Arbiter,
        principal: Principal,
        body: LeaseRequest,
        waiting: tuple[DeviceRequest, LeaseOwner, int],
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> Lease:
        """Wait through the repartitioner: it serves waiting requests in its order.

        A request tries the free devices itself only when nobody waits yet (the fast path);
        behind others it queues, so that priorities, aging and reservations hold.
        """
        request, owner, priority = waiting
        with self.waits.waiting(request, owner) as waiter:
            waiter.priority = priority
            if not arbiter.has_waiting():
                try:
                    return await self._attempt(body, owner)
                except RETRYABLE:
                    pass
            waiter.waiting = True
            try:
                return await arbiter.wait_for(waiter, body, owner, gone)
            except MigctlError as error:
                raise await self._private(principal, error) from None

    async def lease_exact(self, uuid: str, owner: LeaseOwner, ttl_seconds: float | None) -> Lease:
        """Lease the free device ``uuid`` to ``owner`` (the repartitioner's grants)."""
        body = LeaseRequest(uuid=uuid, ttl_seconds=ttl_seconds, job=owner.job)
        return await self._attempt(body, owner)

    # -- release, renew, read ------------------------------------------------------------------

    async def release(self, principal: Principal, target: str, *, admin: bool = False) -> Lease:
        """End a lease of the caller's; ``admin``: revoke anyone's (admins only)."""
        if admin and not principal.is_admin:
            raise PermissionDeniedError(
                f"{principal.name} is not an admin of this daemon: --admin is refused",
                hint="release your own leases, or ask an admin",
                context={"lease": target},
            )
        try:
            lease = await self.blocking.lease(
                self.node.release, target, user=principal.name, admin=admin
            )
        except PermissionDeniedError as exc:
            raise await self._private(principal, exc) from exc
        self.freed(lease)  # a soft lease's idle MPS daemon stopped with it (the node's release)
        return lease

    async def renew(self, principal: Principal, target: str, ttl_seconds: float | None) -> Lease:
        try:
            return await self.blocking.lease(
                self.node.renew, target, ttl_seconds, user=principal.name
            )
        except PermissionDeniedError as exc:
            raise await self._private(principal, exc) from exc

    async def get(self, principal: Principal, target: str) -> Lease:
        """A lease by id (active or ended), or the active lease on a ``MIG-`` device."""
        if target.isdigit():
            return await self.blocking.lease(self.store.get_lease, int(target))
        lease = await self.blocking.lease(self.store.get, target)
        if lease is None:
            raise NotFoundError(
                f"no active lease on device {target}",
                hint="GET /v1/leases lists active leases; ask by lease id for ended ones",
                context={"uuid": target},
            )
        return lease

    async def list_leases(self, principal: Principal, *, history: bool, mine: bool) -> list[Lease]:
        found = await self.blocking.lease(self.node.leases, history=history)
        return [lease for lease in found if not mine or lease.user == principal.name]

    async def reap_forever(self, every_s: float) -> None:
        """End expired and dead-holder leases every ``every_s``; wake who waits for them."""
        while True:
            await asyncio.sleep(every_s)
            try:
                ended = await self.blocking.lease(self.store.reap)
            except MigctlError as error:
                log.warning("reaping leases failed: %s", error)
                continue
            for lease in ended:
                self.freed(lease)

    def freed(self, lease: Lease) -> None:
        """A lease ended: wake a waiter its device suits, and the repartitioner."""
        self.waits.device_freed(freed_device(lease))
        if self.arbiter is not None:
            self.arbiter.kick()

    # -- privacy, start-up ------------------------------------------------------------------

    async def _private(self, principal: Principal, error: MigctlError) -> MigctlError:
        """``error`` with other users' names, jobs and PIDs replaced, unless an admin asks."""
        if principal.is_admin:
            return error
        active = await self.blocking.lease(self.node.leases)
        return redact(error, active, principal)

    def end_vanished(self) -> list[Lease]:
        """End every active lease whose MIG device is gone (after a reboot or GPU reset)."""
        present = {device.uuid for device in self.gpu.mig_devices()}
        ended = []
        for lease in self.node.leases():
            device = lease.cuda_device  # a soft lease: its parent (a whole GPU stays)
            if device in present or device.startswith("GPU-"):
                continue
            log.warning("lease %d: device %s no longer exists; ending it", lease.lease_id, device)
            ended.append(self.node.release(lease.lease_id, user=VANISHED_BY, admin=True))
        return ended


def redact(error: MigctlError, leases: list[Lease], viewer: Principal) -> MigctlError:
    """A copy of ``error`` naming other users' leases only as 'another user under lease N'."""
    message, hint = error.message, error.hint
    for lease in leases:
        if lease.user == viewer.name:
            continue
        anonymous = f"another user under lease {lease.lease_id}"
        message = message.replace(lease.describe_holder(), anonymous)
        hint = None if hint is None else hint.replace(f"ask {lease.user} ", "ask its holder ")
        message = message.replace(f"it belongs to {lease.user}", "it belongs to another user")
    context = {k: v for k, v in error.context.items() if k not in {"holder", "holders"}}
    return type(error)(message, hint=hint, context=context)


def _after_waiting(error: MigctlError, wait_seconds: float, *, reshaping_off: bool) -> MigctlError:
    """``error`` after a wait in vain; ``reshaping_off``: its hint says reshaping is off."""
    if wait_seconds <= 0:
        return error
    hint = error.hint
    if reshaping_off and isinstance(error, InsufficientResourcesError):
        hint = f"{hint}; the daemon does not reshape idle instances (repartitioning is off)"
    return type(error)(
        f"{error.message} (gave up after waiting {wait_seconds:g} s)",
        hint=hint,
        context={**error.context, "waited_seconds": wait_seconds},
    )


def priority_of(principal: Principal, body: LeaseRequest) -> int:
    """The request's priority; users may ask for at most :data:`USER_MAX_PRIORITY`."""
    priority = body.priority or 0
    if priority > USER_MAX_PRIORITY and not principal.is_admin:
        raise PermissionDeniedError(
            f"priority {priority} is above {USER_MAX_PRIORITY}, the most a user may ask for",
            hint=f"ask with priority 0-{USER_MAX_PRIORITY}, or ask an admin",
            context={"priority": priority},
        )
    return priority


def _check_create(principal: Principal, body: LeaseRequest) -> None:
    """``create`` makes a GPU instance: a change of the GPUs, which only an admin may ask for."""
    if body.create and not principal.is_admin:
        raise PermissionDeniedError(
            "create makes a GPU instance, a change of the GPUs that needs the admin role",
            hint="ask without create (wait_seconds waits for a device), or ask an admin to "
            "apply a layout that has the device you need",
            context={"user": principal.name},
        )


def _check_pid(principal: Principal, pid: int) -> None:
    """A lease may follow a process only on this host, and only the caller's own process."""
    if principal.via != "socket":
        raise InvalidInputError(
            "pid binds a lease to a process on the daemon's host: use the Unix socket",
            hint="drop pid, or connect through the Unix socket as the process's user",
            context={"pid": pid},
        )
    owner_uid = process_facts(pid).uid
    if owner_uid is None:
        raise InvalidStateError(
            f"process {pid} is not running on this host",
            hint="pass the PID of the live process that will use the device",
            context={"pid": pid},
        )
    if not principal.is_admin and owner_uid != principal.uid:
        raise PermissionDeniedError(
            f"process {pid} belongs to another user",
            hint="a lease may only follow one of your own processes",
            context={"pid": pid},
        )
