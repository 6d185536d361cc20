"""The fleet's meeting point inside the Dask scheduler: agents, orders, results, the claim.

Why this exists: node agents and the controller must find each other and talk without a
channel of their own, and a scheduler must never run two controllers. Everything goes through
the scheduler's own comms: this registry is a scheduler extension (``scheduler.extensions
["migctl-fleet"]``) with three handlers that Dask serves like its own:

* ``migctl_fleet_agent(host, report, error, events, wait_s)``: an agent's heartbeat. It leaves
  its inventory (or why it has none) and what it saw, and takes its pending orders, waiting up
  to ``wait_s`` for one (a long poll: orders reach an agent at once);
* ``migctl_fleet_result(host, result)``: an agent's answer to an order;
* ``migctl_fleet_status()`` / ``migctl_fleet_metrics()``: the controller's last fleet view and
  Prometheus text, for ``migctl fleet status`` / ``metrics``; the same over HTTP on the
  scheduler's web server (``fleet.http``: ``/migctl/fleet.json``, ``/migctl/metrics``).

The controller side (``post``, ``result``, ``claim``...) is called in the scheduler's process:
directly by the plugin, through ``Client.run_on_scheduler`` by an external controller (the
module functions at the end take ``dask_scheduler`` for that). The claim: one controller per
scheduler. A plugin holds it until it closes; an external controller holds it while its client
is connected and it renews it (every cycle) within ``ttl_s``. A second one is refused with
``InUseError`` naming the holder. Imported by ``fleet.plugin`` and ``fleet.agent_host``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from migctl.errors import InUseError

EXTENSION = "migctl-fleet"
AGENT_HANDLER = "migctl_fleet_agent"
RESULT_HANDLER = "migctl_fleet_result"
STATUS_HANDLER = "migctl_fleet_status"
METRICS_HANDLER = "migctl_fleet_metrics"
MAX_WAIT_S = 30.0
MAX_EVENTS = 1000


@dataclass
class AgentState:
    """What the registry knows of one agent."""

    host: str
    report: dict[str, Any] | None = None  # HostInventoryOut, JSON mode
    error: str | None = None  # why the agent has no inventory now
    seen: float = 0.0  # monotonic


@dataclass
class Claim:
    who: str
    mode: str  # "plugin" or "external"
    client: str | None  # the external controller's client id
    since: float  # epoch
    renewed: float  # monotonic
    ttl_s: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"{self.who} ({self.mode} controller, since {started})"


class Registry:
    """See the module docstring."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.agents: dict[str, AgentState] = {}
        self.orders: dict[str, list[dict[str, Any]]] = {}
        self.wakeups: dict[str, asyncio.Event] = {}
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.claim: Claim | None = None
        self.view: dict[str, Any] | None = None
        self.metrics = ""
        self.events: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=MAX_EVENTS)
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        scheduler.handlers.update(
            {
                AGENT_HANDLER: self.agent_call,
                RESULT_HANDLER: self.agent_result,
                STATUS_HANDLER: self.status,
                METRICS_HANDLER: self.metrics_text,
            }
        )

    # the agents' side -----------------------------------------------------------------------

    async def agent_call(
        self,
        host: str,
        report: dict[str, Any] | None = None,
        error: str | None = None,
        events: list[dict[str, Any]] | None = None,
        wait_s: float = 0.0,
    ) -> list[dict[str, Any]]:
        state = self.agents.setdefault(host, AgentState(host))
        state.seen = time.monotonic()
        state.error = error
        if report is not None or error is not None:
            state.report = report
        for event in events or ():
            self.events.append((next(self._seq), host, event))
        orders = self._take(host)
        if not orders and wait_s > 0:
            wake = self.wakeups.setdefault(host, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(wait_s, MAX_WAIT_S))
            orders = self._take(host)
        return orders

    def _take(self, host: str) -> list[dict[str, Any]]:
        now = time.time()
        orders = [o for o in self.orders.pop(host, []) if o["deadline"] > now]
        if host in self.wakeups:
            self.wakeups[host].clear()
        return orders

    def agent_result(self, host: str, result: dict[str, Any]) -> None:
        waiter = self.waiters.pop(int(result.get("id", 0)), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def status(self) -> dict[str, Any] | None:
        return self.view

    def metrics_text(self) -> str:
        return self.metrics

    # the controller's side ------------------------------------------------------------------

    def post(self, host: str, body: dict[str, Any], timeout_s: float) -> int:
        """Queue an order for ``host``; its answer comes through ``result``."""
        ident = next(self._ids)
        order = {"id": ident, "host": host, "deadline": time.time() + timeout_s, "body": body}
        self.orders.setdefault(host, []).append(order)
        self.waiters[ident] = asyncio.get_running_loop().create_future()
        self.wakeups.setdefault(host, asyncio.Event()).set()
        return ident

    async def result(self, ident: int, timeout_s: float) -> dict[str, Any] | None:
        """The agent's answer to order ``ident``, or None when none came within ``timeout_s``."""
        waiter = self.waiters.get(ident)
        if waiter is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            self.waiters.pop(ident, None)
            return None

    def reports(self) -> dict[str, AgentState]:
        return dict(self.agents)

    def take_claim(self, who: str, mode: str, client: str | None, ttl_s: float) -> None:
        """Hold (or renew) the one controller's claim; ``InUseError`` while another holds it."""
        held = self.claim
        if held is not None and held.who != who and self._alive(held):
            raise InUseError(
                f"this scheduler already has a fleet controller: {held.describe()}",
                hint="one controller per scheduler: stop the other one first (a dead external "
                f"controller's claim lapses after {held.ttl_s:.0f} s)",
                context={"holder": held.who, "mode": held.mode},
            )
        if held is not None and held.who == who:
            held.renewed = time.monotonic()
            return
        self.claim = Claim(who, mode, client, time.time(), time.monotonic(), ttl_s)

    def _alive(self, claim: Claim) -> bool:
        if claim.client is not None and claim.client not in self.scheduler.clients:
            return False
        return time.monotonic() - claim.renewed <= claim.ttl_s

    def drop_claim(self, who: str) -> None:
        if self.claim is not None and self.claim.who == who:
            self.claim = None


def install(scheduler: Any) -> Registry:
    """The scheduler's registry, made on first use (idempotent)."""
    found = scheduler.extensions.get(EXTENSION)
    if isinstance(found, Registry):
        return found
    registry = Registry(scheduler)
    scheduler.extensions[EXTENSION] = registry
    from migctl.fleet.http import serve

    serve(scheduler, registry)
    return registry


# ``Client.run_on_scheduler`` forms (an external controller) ---------------------------------


def remote_install(dask_scheduler: Any) -> bool:
    install(dask_scheduler)
    return True


def remote_claim(who: str, client: str, ttl_s: float, dask_scheduler: Any) -> None:
    install(dask_scheduler).take_claim(who, "external", client, ttl_s)


def remote_drop_claim(who: str, dask_scheduler: Any) -> None:
    install(dask_scheduler).drop_claim(who)


def remote_reports(after: int, dask_scheduler: Any) -> dict[str, Any]:
    """Every agent's last report and age, and the agents' events numbered above ``after``."""
    registry = install(dask_scheduler)
    now = time.monotonic()
    agents = {
        host: {"report": s.report, "error": s.error, "age_s": now - s.seen}
        for host, s in registry.reports().items()
    }
    events = [(seq, host, event) for seq, host, event in registry.events if seq > after]
    return {"agents": agents, "events": events}


def remote_post(host: str, body: dict[str, Any], timeout_s: float, dask_scheduler: Any) -> int:
    return install(dask_scheduler).post(host, body, timeout_s)


async def remote_result(ident: int, timeout_s: float, dask_scheduler: Any) -> dict[str, Any] | None:
    return await install(dask_scheduler).result(ident, timeout_s)


def remote_publish_view(view: dict[str, Any], metrics: str, dask_scheduler: Any) -> None:
    registry = install(dask_scheduler)
    registry.view = view
    registry.metrics = metrics
