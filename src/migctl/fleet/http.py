"""The fleet view and metrics over HTTP, on the Dask scheduler's own web server.

Why this exists: Prometheus scrapes HTTP, and a dashboard page polls a JSON document; the
scheduler already serves HTTP (its dashboard port, 8787 by default). ``serve(scheduler,
registry)`` adds two read-only routes there when the scheduler has a web server:

* ``/migctl/fleet.json``: the fleet view (``migctl.schemas.fleet.FleetStatusOut`` in the
  ``migctl/v2`` envelope, ``kind: FleetStatus``), as ``migctl fleet status -o json`` prints it;
  ``{"schema": ..., "kind": "FleetStatus", "controller": null}`` before the first cycle;
* ``/migctl/metrics``: the fleet's Prometheus text (host labels).

Both read what the controller published after its last cycle. Imports tornado (a dependency
of distributed). Imported by ``fleet.registry``.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from migctl.schemas.base import envelope

JSON_ROUTE = r"/migctl/fleet\.json"
METRICS_ROUTE = r"/migctl/metrics"


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
        r".*$", [(JSON_ROUTE, _FleetJson, options), (METRICS_ROUTE, _FleetMetrics, options)]
    )
    return True
