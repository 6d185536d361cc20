"""The fleet view and metrics over HTTP, on the Dask scheduler's own web server.

Why this exists: Prometheus scrapes HTTP, and a dashboard page polls a JSON document; the
scheduler already serves HTTP (its dashboard port, 8787 by default). ``serve(scheduler,
registry)`` adds two read-only routes there when the scheduler has a web server:

* ``/migctl/fleet.json``: the fleet view (``migctl.schemas.fleet.FleetStatusOut`` in the
  ``migctl/v2`` envelope, ``kind: FleetStatus``), as ``migctl fleet status -o json`` prints it;
  ``{"schema": ..., "kind": "FleetStatus", "controller": null}`` before the first cycle;
* ``/migctl/metrics``: the fleet's Prometheus text (host labels);
* ``/migctl/fleet``: the fleet page (``fleet/static``: HTML, CSS and a small script, no build
  step, no CDN) that polls ``/migctl/fleet.json`` and draws every host, GPU, slice, soft device
  (isolation soft), worker and task, the reshapes in flight and the last decisions; it holds no
  data itself, and is served with a strict Content-Security-Policy (this origin's script, style
  and fetch only; no framing).

All read what the controller published after its last cycle. Imports tornado (a dependency
of distributed). Imported by ``fleet.registry``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from tornado import web

from migctl.schemas.base import envelope

JSON_ROUTE = r"/migctl/fleet\.json"
METRICS_ROUTE = r"/migctl/metrics"
PAGE_ROUTE = r"/migctl/(fleet|fleet\.js|fleet\.css)"
PAGE_FILES = {  # the only files served: route name -> (packaged file, media type)
    "fleet": ("fleet.html", "text/html; charset=utf-8"),
    "fleet.js": ("fleet.js", "text/javascript; charset=utf-8"),
    "fleet.css": ("fleet.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@functools.cache
def page_file(name: str) -> bytes:
    """A packaged file of ``migctl/fleet/static`` (read once)."""
    return resources.files("migctl.fleet").joinpath("static", name).read_bytes()


class _FleetPage(web.RequestHandler):
    def get(self, name: str) -> None:
        packaged, media = PAGE_FILES[name]  # the route admits only these names
        for header, value in PAGE_HEADERS.items():
            self.set_header(header, value)
        self.set_header("Content-Type", media)
        self.write(page_file(packaged))


class _FleetJson(web.RequestHandler):
    def initialize(self, registry: Any) -> None:
        self.registry = registry

    def get(self) -> None:
        view = self.registry.view
        body = envelope("FleetStatus", view if view is not None else {"controller": None})
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(body))


class _FleetMetrics(web.RequestHandler):
    def initialize(self, registry: Any) -> None:
        self.registry = registry

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.write(self.registry.metrics)


def serve(scheduler: Any, registry: Any) -> bool:
    """Add the routes to the scheduler's web server; False when it has none."""
    app = getattr(scheduler, "http_application", None)
    if app is None:
        return False
    options = {"registry": registry}
    app.add_handlers(
        r".*$",
        [
            (JSON_ROUTE, _FleetJson, options),
            (METRICS_ROUTE, _FleetMetrics, options),
            (PAGE_ROUTE, _FleetPage),
        ],
    )
    return True
