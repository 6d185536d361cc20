"""The dashboard: its page and assets (``/``, ``/dashboard``) and its feed (``/v1/dashboard``).

Why this module exists: people want to *see* who uses which slice of which GPU. The page is
static HTML/CSS/JS shipped in the package (``migctl/server/static``: no build step, no CDN, no
external font; it works on an offline machine) and holds no data, so it is served to anyone;
the data comes from ``GET /v1/dashboard``, which needs the same authentication as the rest of
the API (the Unix socket's peer, or a bearer token that the page sends in an ``Authorization``
header: see ``static/dashboard.js`` and docs/service.md for why neither a cookie nor a query
parameter carries it).

Responses carry a strict Content-Security-Policy (only this origin's script, style and fetch;
no framing), ``nosniff`` and ``no-referrer``. Only ``migctl.server.app`` imports this module.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from migctl.errors import NotFoundError
from migctl.server.dashboard import RECENT_JOBS, DashboardOut, dashboard_out
from migctl.server.deps import Caller, Svc

router = APIRouter()

ASSETS = {  # the only files served: name -> media type
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@functools.cache
def asset(name: str) -> bytes:
    """A packaged file of ``migctl/server/static`` (read once)."""
    return resources.files("migctl.server").joinpath("static", name).read_bytes()


def asset_response(name: str) -> Response:
    if name not in ASSETS:
        raise NotFoundError(
            f"no dashboard file {name!r}", hint="open /dashboard", context={"file": name}
        )
    return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", include_in_schema=False)
async def page() -> Response:
    return asset_response("dashboard.html")


@router.get("/dashboard/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> Response:
    return asset_response(name)


@router.get(
    "/v1/dashboard",
    tags=["dashboard"],
    summary="What the dashboard draws: GPUs, instances, leases, waiting queue, recent jobs",
)
async def feed(service: Svc, principal: Caller) -> DashboardOut:
    waiters = service.leases.waits.queued()  # on the event loop, like every queue change
    inventory = await service.on_gpus(service.node.inventory)
    jobs = await service.blocking.run(service.jobs.store.recent, limit=RECENT_JOBS)
    return dashboard_out(
        inventory=inventory,
        waiters=waiters,
        jobs=jobs,
        viewer=principal,
        version=service.version,
        backend=service.node.description,
    )
