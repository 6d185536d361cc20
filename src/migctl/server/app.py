"""The ASGI application: routes, error handlers, size cap and audit around them.

Why this module exists: one function builds the whole HTTP surface, so the daemon, the tests and
the OpenAPI generator (``migctl.server.openapi``, which needs no backend) see the same app.
From the outside in: the HTTP metrics (count and time every request by route template),
security headers (a strict Content-Security-Policy on every answer), the per-caller rate
limit (429 before anything else is done or audited), the audit middleware
(every mutating request is logged, refused ones included), the body size cap (413), then
FastAPI (error handlers give every failure the migctl error shape).
Only ``migctl.server`` imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from migctl import __version__
from migctl.schemas.errors import ErrorOut
from migctl.server import (
    http_errors,
    routes_admin,
    routes_dashboard,
    routes_instances,
    routes_layouts,
    routes_leases,
    routes_metrics,
    routes_read,
)
from migctl.server.audit import ASGIApp, AuditMiddleware, Receive, Scope, Send
from migctl.server.config import MAX_BODY_BYTES
from migctl.server.http_metrics import HttpMetrics
from migctl.server.limits import BodyLimit
from migctl.server.ratelimit import RateLimit
from migctl.server.secure_headers import SecureHeaders
from migctl.server.service import Service

DESCRIPTION = """\
The migctl daemon owns the GPUs of one server; everyone else asks it.

**Authentication.** On the Unix socket the kernel identifies you (SO_PEERCRED): root and
members of the admin group are admins, every other local user is a user. Over TCP send
`Authorization: Bearer <token>`; no token: 401. A user calling an admin route: 403.

**Errors** always have the shape of `migctl ... --output json` errors: `error` (kind),
`message`, `hint`, `exit_code`, `context`; a client turns one back into the same migctl error
class (`migctl.errors.error_class(kind)`).

**Bodies** are the `migctl.schemas` models that `migctl.RemoteNode` sends and reads: the same
values a `LocalNode` returns. Changes of the GPUs run as jobs (202 + `Location`); a job's
`result` is the schema of what the change did.
"""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "bad JSON or arguments"),
        (401, "no or bad credentials"),
        (403, "not allowed for your role"),
        (404, "not found"),
        (409, "in use, taken or in the wrong state"),
        (413, "request body too large"),
        (422, "invalid input or a layout that cannot exist"),
    )
}


class _Outer:
    """The middlewares in front of FastAPI (plain ASGI: no per-request overhead beyond them)."""

    def __init__(self, app: FastAPI, service: Service | None, max_body_bytes: int) -> None:
        self.fastapi = app
        limited: ASGIApp = BodyLimit(app, max_body_bytes)
        audited = AuditMiddleware(
            limited,
            service.audit if service else None,
            service.blocking.state_lane if service else None,
        )
        limited_rate = RateLimit(audited, service)
        self._entry = HttpMetrics(SecureHeaders(limited_rate), service.metrics if service else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)


def create_fastapi(service: Service | None) -> FastAPI:
    """The FastAPI app alone (the OpenAPI schema comes from here)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is None:
            yield
            return
        service.loop = asyncio.get_running_loop()
        service.loop.set_default_executor(service.blocking.executor)
        tasks = [asyncio.create_task(service.leases.reap_forever(service.config.reap_every_s))]
        if service.repartition is not None:
            tasks.append(asyncio.create_task(service.repartition.run_forever()))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="migctl service",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,  # no swagger-ui: it would load code from a CDN into the token's origin
        redoc_url=None,
        responses=ERROR_RESPONSES,
        lifespan=lifespan,
    )
    app.state.service = service
    http_errors.install(app)
    routers = (routes_read, routes_layouts, routes_instances, routes_leases, routes_admin)
    for module in (*routers, routes_metrics, routes_dashboard):
        app.include_router(module.router)
    return app


def create_app(service: Service | None, *, max_body_bytes: int = MAX_BODY_BYTES) -> _Outer:
    """The full ASGI app for ``service`` (None: schema only, every route answers 409)."""
    limit = service.config.max_body_bytes if service is not None else max_body_bytes
    return _Outer(create_fastapi(service), service, limit)
