"""Lease routes: acquire (optionally waiting), list, read, release, renew.

Why this module exists: leasing is what most users do with the daemon. Any authenticated
principal may lease, through the daemon's ``LocalNode``; the lease is recorded under the
kernel-verified user (socket) or the token's owner. A user sees the details of their own leases
only, may release and renew only their own; an admin may release anyone's (it ends as
``revoked``). Only ``server.app`` imports it.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from migctl.leases import Lease
from migctl.schemas.leases import LeaseOut, LeaseRequest, RenewRequest
from migctl.server import audit
from migctl.server.audit_detail import request_digest
from migctl.server.auth import Principal
from migctl.server.deps import Caller, Svc
from migctl.server.provisional import DELIVERED_KEY, as_asked

router = APIRouter(prefix="/v1", tags=["leases"])


def lease_out(lease: Lease, viewer: Principal) -> LeaseOut:
    """The lease as ``viewer`` may see it: its holder only when theirs, or to an admin."""
    return LeaseOut.of(lease, visible=viewer.may_see(lease.user), mine=lease.user == viewer.name)


@router.get("/leases", summary="Active leases (history=true: ended ones too)")
async def list_leases(
    service: Svc, principal: Caller, history: bool = False, mine: bool = False
) -> list[LeaseOut]:
    found = await service.leases.list_leases(principal, history=history, mine=mine)
    return [lease_out(lease, principal) for lease in found]


@router.post("/leases", status_code=201, summary="Lease a MIG device (wait_seconds: wait for one)")
async def acquire(
    body: LeaseRequest,
    service: Svc,
    principal: Caller,
    request: Request,
    after_answer: BackgroundTasks,
) -> LeaseOut:
    audit.note(request, "lease acquire", None, request=request_digest(await request.body(), body))
    lease = await service.leases.acquire(principal, body, request.is_disconnected)
    audit.note(request, "lease acquire", f"lease {lease.lease_id}", uuid=lease.uuid)

    async def settle() -> None:  # runs once the answer was sent (see ``provisional``)
        delivered = bool(request.scope.get(DELIVERED_KEY, True))
        await service.leases.settle(lease.lease_id, body.ttl_seconds, delivered=delivered)

    after_answer.add_task(settle)
    return lease_out(as_asked(lease, body.ttl_seconds), principal)


@router.get("/leases/{target}", summary="One lease: by id (active or ended) or by MIG device uuid")
async def get_lease(target: str, service: Svc, principal: Caller) -> LeaseOut:
    return lease_out(await service.leases.get(principal, target), principal)


@router.delete("/leases/{target}", summary="Release a lease (by id or MIG device uuid)")
async def release(
    target: str, service: Svc, principal: Caller, request: Request, admin: bool | None = None
) -> LeaseOut:
    """``admin=true``: an admin revokes another user's lease (as ``lease release --admin``);
    ``admin=false``: only the caller's own lease (``migctl`` always says which). Left out: an
    admin may revoke anyone's, a user only their own."""
    if admin is None:
        admin = principal.is_admin
    audit.note(request, "lease release", f"lease {target}", admin=admin)
    lease = await service.leases.release(principal, target, admin=admin)
    audit.note(
        request,
        "lease release",
        f"lease {lease.lease_id}",
        uuid=lease.uuid,
        end_reason=None if lease.end_reason is None else lease.end_reason.value,
    )
    return lease_out(lease, principal)


@router.post("/leases/{target}/renew", summary="Push a lease's expiry to now + TTL")
async def renew(
    target: str, body: RenewRequest, service: Svc, principal: Caller, request: Request
) -> LeaseOut:
    audit.note(request, "lease renew", f"lease {target}", ttl_seconds=body.ttl_seconds)
    return lease_out(await service.leases.renew(principal, target, body.ttl_seconds), principal)
