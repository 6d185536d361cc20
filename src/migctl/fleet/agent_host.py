"""The controller's side of node agents: each agent as a ``Host``, found through the registry.

Why this exists: the controller plans and acts on ``Host`` objects; with agents, a host is a
process on another machine that reports through the scheduler (``fleet.registry``).
``AgentDirectory`` is the controller's ``directory``: each cycle it reads every agent's last
report and the events agents saw (a worker that died...), and returns an ``AgentHost`` for
each agent heard from within ``stale_s``. An ``AgentHost`` answers ``inventory()`` from the
last report (no round trip) and turns ``apply`` / ``start_worker`` / ``stop_worker`` into
orders, waiting for the agent's answer up to the order's deadline (``pending_deadline_s`` for a
reshape): an order is never sent twice, and an agent refuses one past its deadline, so a
reshape the controller gave up on cannot happen later behind its back.
Imported by ``fleet.plugin``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from migctl.errors import InvalidStateError, MigctlError
from migctl.fleet.host import Device, HostInventory
from migctl.fleet.policy import Policy
from migctl.fleet.registry import remote_post, remote_reports, remote_result
from migctl.fleet.scheduler_side import SchedulerLink
from migctl.fleet.wire import device_out, from_msg, inventory_in, to_msg
from migctl.planner.fleet_model import GpuTarget
from migctl.schemas.fleet import (
    ApplyOrder,
    GpuTargetOut,
    HostInventoryOut,
    OrderResult,
    StartOrder,
    StopOrder,
)

log = logging.getLogger(__name__)
ORDER_SLACK_S = 5.0  # beyond what the order itself may take: the trip there and back


@dataclass
class AgentHost:
    """One agent, as the controller's ``Host`` (see the module docstring)."""

    host_name: str
    link: SchedulerLink
    policy: Policy
    report: HostInventoryOut | None = None
    error: str | None = None
    age_s: float = 0.0

    @property
    def name(self) -> str:
        return self.host_name

    def update(self, raw: Mapping[str, Any]) -> None:
        self.age_s = float(raw.get("age_s", 0.0))
        self.error = raw.get("error")
        if raw.get("report") is not None:
            try:
                self._keep(from_msg(HostInventoryOut, raw["report"]))
            except ValidationError as error:
                self.error = f"its agent's report cannot be read: {error.errors()[:2]}"
                self.report = None
        elif self.error is not None:
            self.report = None

    def _keep(self, report: HostInventoryOut) -> None:
        """Keep the newest inventory (an order's answer may be newer than the last report)."""
        if self.report is None or report.seq >= self.report.seq:
            self.report = report

    async def inventory(self) -> HostInventory:
        if self.report is None:
            raise InvalidStateError(
                f"host {self.host_name} has no inventory: {self.error or 'none reported yet'}",
                context={"host": self.host_name},
            )
        return inventory_in(self.report)

    async def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory:
        body = ApplyOrder(targets=[GpuTargetOut.of(t) for _, t in sorted(targets.items())])
        result = await self._order(to_msg(body), self.policy.pending_deadline_s)
        return (
            await self.inventory() if result.inventory is None else inventory_in(result.inventory)
        )

    async def start_worker(self, device: Device, scheduler: str) -> str:
        body = StartOrder(device=device_out(device), scheduler=scheduler)
        result = await self._order(to_msg(body), self.policy.retire_timeout_s)
        if result.worker is None:
            raise InvalidStateError(f"host {self.host_name} started no worker on {device.uuid}")
        return result.worker

    async def stop_worker(self, name: str, grace_s: float) -> None:
        body = StopOrder(worker=name, grace_s=grace_s)
        await self._order(to_msg(body), grace_s * 2 + ORDER_SLACK_S)

    async def _order(self, body: dict[str, Any], timeout_s: float) -> OrderResult:
        ident = await self.link.call(remote_post, self.host_name, body, timeout_s)
        raw = await self.link.call(remote_result, ident, timeout_s + ORDER_SLACK_S)
        if raw is None:
            raise InvalidStateError(
                f"host {self.host_name} did not answer order {ident} ({body['kind']}) within "
                f"{timeout_s:.0f} s",
                hint="is its agent running? `migctl fleet status` shows when it was last seen",
                context={"host": self.host_name, "order": ident},
            )
        result = from_msg(OrderResult, raw)
        if result.inventory is not None:
            self._keep(result.inventory)
        if not result.ok:
            if result.error is not None:
                raise result.error.to_error()
            raise MigctlError(f"host {self.host_name} failed order {ident}")
        return result


@dataclass
class AgentDirectory:
    """Every agent heard from lately, as hosts; and the events agents reported."""

    link: SchedulerLink
    policy: Policy
    stale_s: float = 30.0
    hosts: dict[str, AgentHost] = field(default_factory=dict)
    after: int = 0  # the last event number read
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # unread (host, event)

    async def __call__(self) -> list[AgentHost]:
        found = await self.link.call(remote_reports, self.after)
        for seq, host, event in found["events"]:
            self.after = max(self.after, int(seq))
            self.events.append((str(host), dict(event)))
        live = []
        for name, raw in sorted(found["agents"].items()):
            host = self.hosts.setdefault(name, AgentHost(name, self.link, self.policy))
            host.update(raw)
            if host.age_s <= self.stale_s:
                live.append(host)
        return live

    def take_events(self) -> list[tuple[str, dict[str, Any]]]:
        taken, self.events = self.events, []
        return taken
