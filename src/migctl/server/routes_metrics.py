"""``GET /metrics``: the machine and the daemon in the Prometheus text format.

Why this module exists: Prometheus scrapes a fixed path with a plain GET. Who may read it:

* anyone the API authenticates: any local user on the Unix socket, any valid token on TCP;
* an anonymous TCP client only when the daemon runs with ``MIGCTL_METRICS_PUBLIC=1`` (for a
  Prometheus that scrapes without credentials); lease holders are then hidden
  (``telemetry.HIDDEN_HOLDER``). A token sent anyway is still checked (401 when bad).

Lease holder names follow the API's privacy rule (see ``telemetry``). The path is outside
``/v1`` (the Prometheus convention) and outside the OpenAPI schema (it is not JSON).
Only ``migctl.server.app`` imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from migctl.server.auth import Principal
from migctl.server.deps import caller, service_of
from migctl.server.peercred import peer_of

router = APIRouter()


async def metrics_reader(request: Request) -> Principal | None:
    """The caller, or None for an anonymous TCP scrape the daemon allows (else 401)."""
    service = service_of(request)
    anonymous = request.headers.get("authorization") is None and peer_of(request.scope) is None
    if anonymous and service.config.metrics_public:
        return None
    return await caller(request)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    service = service_of(request)
    viewer = await metrics_reader(request)
    body = await service.blocking.run(service.metrics.exposition, viewer)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
