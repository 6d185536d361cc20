"""Count and time every HTTP request by method, route template and status.

Why this module exists: ``migctl_http_requests_total`` and
``migctl_http_request_duration_seconds`` must say which *route* was slow or failing, not which
URL: labelling by raw path (``/v1/leases/17``, ``/v1/leases/MIG-...``, every typo a scanner
tries) would create a new time series per lease and per probe and blow up Prometheus. The
router leaves the matched route in the ASGI scope (``scope["route"]``); its template
(``/v1/leases/{target}``) is the label. A request that matched no route (404, or one refused
before routing such as a 413) is labelled :data:`UNMATCHED`.

This middleware sits outermost, so what it measures is what the client waited for. Only
``migctl.server.app`` imports it.
"""

from __future__ import annotations

import time

from migctl.server.audit import ASGIApp, Message, Receive, Scope, Send
from migctl.server.telemetry import DaemonMetrics

UNMATCHED = "(unmatched)"


def route_template(scope: Scope) -> str:
    """The matched route's path template, or :data:`UNMATCHED`."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


class HttpMetrics:
    """ASGI middleware feeding :meth:`DaemonMetrics.observe_http` (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: DaemonMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers
        observed = False

        async def measured_send(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                observed = True
                self._observe(scope, status, started)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            if not observed:
                self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        assert self.metrics is not None
        seconds = time.perf_counter() - started
        self.metrics.observe_http(scope["method"], route_template(scope), status, seconds)
