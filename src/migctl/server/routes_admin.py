"""Admin routes: tokens (create, list, revoke) and the audit log.

Why this module exists: who may reach the daemon over TCP, and what everyone did, are admin
matters. A new token's secret is returned once, in the creation response, and never stored or
logged; the audit row names the token, never its secret. Only ``server.app`` imports it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from migctl.schemas.admin import TokenCreatedOut, TokenOut
from migctl.server import audit
from migctl.server.bodies import AuditOut, TokenCreateRequest, token_out
from migctl.server.deps import Admin, Svc

router = APIRouter(prefix="/v1")


@router.get("/tokens", tags=["tokens"], summary="Every token (revoked ones too), no secrets")
async def list_tokens(service: Svc, principal: Admin) -> list[TokenOut]:
    return [token_out(t) for t in await service.blocking.run(service.tokens.list_tokens)]


@router.post("/tokens", status_code=201, tags=["tokens"], summary="Create a token (shown once)")
async def create_token(
    body: TokenCreateRequest, service: Svc, principal: Admin, request: Request
) -> TokenCreatedOut:
    owner = body.user or body.name
    audit.note(request, "token create", body.name, role=body.role, owner=owner)
    secret, info = await service.blocking.run(
        service.tokens.create,
        name=body.name,
        role=body.role,
        owner=owner,
        created_by=principal.name,
    )
    audit.add_detail(request, token_id=info.token_id)
    return TokenCreatedOut(token=secret, info=token_out(info))


@router.delete("/tokens/{token}", tags=["tokens"], summary="Revoke a token by name or id")
async def revoke_token(token: str, service: Svc, principal: Admin, request: Request) -> TokenOut:
    audit.note(request, "token revoke", token)
    info = await service.blocking.run(service.tokens.revoke, token, revoked_by=principal.name)
    return token_out(info)


@router.get("/audit", tags=["audit"], summary="The audit log, newest first (admin)")
async def audit_log(
    service: Svc,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: int | None = None,
    actor: str | None = None,
) -> list[AuditOut]:
    entries = await service.blocking.run(
        service.audit.entries, limit=limit, before_id=before_id, actor=actor
    )
    return [AuditOut.of(entry) for entry in entries]
