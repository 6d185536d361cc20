"""The node agent: one per host, beside its daemon; it runs the host's fleet workers.

Why this exists: the controller decides, but only something on the host can start a process
there, watch it die, and reach the host's daemon (or simulated machine) through its socket.
The agent is a Dask client of the fleet's scheduler (no channel of its own): every
``heartbeat_s`` it calls the registry's ``migctl_fleet_agent`` handler with its inventory
(``NodeHost.inventory``: the node's GPUs, devices, busy flags, its workers) and the events it
saw, and takes the orders waiting for it (a long poll, so orders arrive at once). Orders run
as they come (``apply``: reshape through the node; ``start``/``stop``: a worker in its own
process group, SIGTERM then SIGKILL to the group); each answer goes back through
``migctl_fleet_result``. An order past its deadline is refused, never run late.

With soft shares configured (``NodeHost.soft_shares``) the agent itself keeps a worker per
share on each GPU without MIG (``fleet.soft_workers``), and starts one that died again after
``soft_backoff_s``: the controller never orders or reshapes soft workers.

Supervision: a worker whose process ended by itself is reported (``worker-died``) and
forgotten; its ``migctl run`` releases its lease as it ends (and the lease store's liveness
rules end it if even that died). A node that cannot answer is reported (``node-unavailable``)
and no inventory is sent until it is back. The agent reconnects when the scheduler goes away
(a new scheduler gets a full report at once); when the agent stops it stops its workers.
Imported by the CLI (``migctl fleet agent``) and ``MigCluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from migctl.errors import InvalidInputError, InvalidStateError, MigctlError
from migctl.fleet.node_host import NodeHost
from migctl.fleet.registry import AGENT_HANDLER, RESULT_HANDLER
from migctl.fleet.wire import device_in, from_msg, inventory_out, to_msg
from migctl.schemas.errors import ErrorOut
from migctl.schemas.fleet import (
    AgentEvent,
    ApplyOrder,
    HostInventoryOut,
    Order,
    OrderResult,
    StartOrder,
)

log = logging.getLogger(__name__)
RECONNECT_S = 0.5


@dataclass
class Agent:
    """One host's agent (see the module docstring)."""

    host: NodeHost
    scheduler: str
    heartbeat_s: float = 1.0
    stop_grace_s: float = 10.0
    soft_backoff_s: float = 10.0  # a soft worker that failed or died is started again after
    events: list[dict[str, Any]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _node_down: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def note(self, kind: str, **detail: str | int | float | None) -> None:
        event = AgentEvent(kind=kind, at=time.time(), detail=detail)
        self.events.append(to_msg(event))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, reconnecting to the scheduler as needed; then stop the
        workers."""
        from distributed import Client

        self.note("agent-started", host=self.host.name)
        try:
            for name in await self.host.adopt():
                self.note("worker-adopted", worker=name)
        except (MigctlError, OSError) as error:
            log.warning("agent %s: cannot look for workers left running: %s", self.host.name, error)
        try:
            while not stop.is_set():
                try:
                    async with Client(
                        self.scheduler,
                        asynchronous=True,
                        timeout=10,
                        name=f"agent:{self.host.name}",
                    ) as client:
                        await self._serve(client, stop)
                except (OSError, TimeoutError) as error:
                    log.info("agent %s: scheduler %s: %s", self.host.name, self.scheduler, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self.host.stop_all(self.stop_grace_s)

    async def _serve(self, client: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.keep_soft_workers()
            report, error = await self.report()
            events, self.events = self.events, []
            try:
                orders = await _call(
                    client,
                    AGENT_HANDLER,
                    host=self.host.name,
                    report=report,
                    error=error,
                    events=events,
                    wait_s=self.heartbeat_s,
                )
            except (OSError, TimeoutError):
                self.events = events + self.events
                raise
            if orders is None:  # no fleet controller on this scheduler (yet)
                self.events = events + self.events
                await asyncio.sleep(self.heartbeat_s)
                continue
            for raw in orders:
                task = asyncio.create_task(self._execute(client, raw))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def keep_soft_workers(self) -> None:
        """Start the host's missing soft-share workers (the controller never orders them)."""
        if not self.host.soft_shares or self._node_down:
            return
        try:
            started, failed = await self.host.ensure_soft_workers(
                self.scheduler, self.soft_backoff_s
            )
        except (MigctlError, OSError, ValidationError) as error:
            log.warning("agent %s: soft workers: %s", self.host.name, error)
            return
        for name in started:
            self.note("soft-worker-started", worker=name)
        for name, reason in failed:
            self.note("soft-worker-failed", worker=name, error=reason)

    async def report(self) -> tuple[dict[str, Any] | None, str | None]:
        """This host's inventory in wire form, or why there is none; notes workers that died."""
        for dead in self.host.reap():
            self.note("worker-died", worker=dead.name, uuid=dead.uuid, pid=dead.pid)
        try:
            inventory = await self.host.inventory()
        except (MigctlError, OSError, ValidationError) as error:  # a daemon's odd answer too
            if not self._node_down:
                self.note("node-unavailable", host=self.host.name, error=str(error)[:500])
            self._node_down = True
            return None, str(error)[:2000]
        if self._node_down:
            self.note("node-back", host=self.host.name)
        self._node_down = False
        out = inventory_out(inventory).model_copy(update={"seq": next(self._seq)})
        return to_msg(out), None

    async def _execute(self, client: Any, raw: dict[str, Any]) -> None:
        result = await self.answer(raw)
        with contextlib.suppress(OSError, TimeoutError):
            await _call(client, RESULT_HANDLER, host=self.host.name, result=to_msg(result))

    async def answer(self, raw: dict[str, Any]) -> OrderResult:
        """Carry out one order; every failure becomes an answer, never an exception."""
        ident = int(raw.get("id", 0)) if isinstance(raw, dict) else 0
        try:
            order = from_msg(Order, raw)
            if order.deadline < time.time():
                raise InvalidStateError(f"order {order.id} arrived past its deadline; not run")
            return await self._carry_out(order)
        except ValidationError as error:
            failure: MigctlError = InvalidInputError(f"malformed order: {error.errors()[:3]}")
        except MigctlError as error:
            failure = error
        except OSError as error:
            failure = InvalidStateError(f"{self.host.name}: {error}")
        log.warning("agent %s: order %s failed: %s", self.host.name, ident, failure.message)
        return OrderResult(id=max(ident, 1), ok=False, error=ErrorOut.of(failure))

    async def _carry_out(self, order: Order) -> OrderResult:
        body = order.body
        if isinstance(body, ApplyOrder):
            await self.host.apply({t.index: t.value() for t in body.targets})
            return await self._done(order.id)
        if isinstance(body, StartOrder):
            name = await self.host.start_worker(device_in(body.device), self.scheduler)
            return await self._done(order.id, worker=name)
        await self.host.stop_worker(body.worker, body.grace_s)
        return await self._done(order.id)

    async def _done(self, ident: int, worker: str | None = None) -> OrderResult:
        report, _ = await self.report()
        inventory = None if report is None else from_msg(HostInventoryOut, report)
        return OrderResult(id=ident, ok=True, inventory=inventory, worker=worker)


async def _call(client: Any, op: str, **message: Any) -> Any:
    """A call to a scheduler handler over Dask's comms; None when the scheduler has no such
    handler (no fleet controller there yet: Dask logs it and answers None)."""
    return await getattr(client.scheduler, op)(**message)
