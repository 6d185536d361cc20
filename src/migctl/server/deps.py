"""FastAPI dependencies: the service behind the app, and the authenticated caller.

Why this module exists: every route but ``/v1/health`` needs a principal, and admin routes need
an admin; declaring that as a dependency (``Caller``, ``Admin``) makes it impossible to forget
and puts the principal where the audit middleware finds it. The GPU path and query parameters
(``GpuPath``, ``GpusQuery``) are bounded here, once. Only ``migctl.server`` imports it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from migctl.errors import InvalidStateError
from migctl.server.audit import PRINCIPAL_KEY
from migctl.server.auth import Principal, require_admin
from migctl.server.hostcheck import check_socket_host
from migctl.server.peercred import peer_of
from migctl.server.ratelimit import IDENTIFIED_KEY
from migctl.server.service import Service


def service_of(request: Request) -> Service:
    service = getattr(request.app.state, "service", None)
    if not isinstance(service, Service):
        raise InvalidStateError("this app has no service behind it (schema only)")
    return service


async def caller(request: Request) -> Principal:
    """The authenticated principal of this request (401 when there is none)."""
    service = service_of(request)
    peer = peer_of(request.scope)
    authorization = request.headers.get("authorization")
    state = request.scope.setdefault("state", {})
    identified = state.get(IDENTIFIED_KEY)  # found by the rate limit before routing
    if authorization is None and peer is not None:
        check_socket_host(request.headers.get("host"))  # see ``hostcheck``: DNS rebinding
    if isinstance(identified, Principal):
        principal = identified
    elif authorization is None:
        principal = service.authenticate(peer, None)  # no database access: stay on the loop
    else:
        principal = await service.blocking.state(service.authenticate, peer, authorization)
    state[PRINCIPAL_KEY] = principal
    return principal


async def admin(request: Request, principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """The principal, who must be an admin (403 otherwise)."""
    action = f"{request.method} {request.url.path}"
    require_admin(principal, action, service_of(request).config.admin_group)
    return principal


Svc = Annotated[Service, Depends(service_of)]
GpuPath = Annotated[
    str, Path(min_length=1, max_length=128, description="a GPU index, UUID or PCI bus id")
]
GpusQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=4096,
        description="GPU indexes, UUIDs or PCI bus ids, comma separated, or 'all' (default)",
    ),
]
Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(admin)]
