"""The fleet controller inside the Dask scheduler (``FleetPlugin``) or beside it.

Why this exists: the controller reads the scheduler's own state, so its natural home is a
``SchedulerPlugin`` (``client.register_plugin(FleetPlugin(hosts))`` or the scheduler's
``--preload``); operators who keep the scheduler untouched run it as its own process
instead (``run_external``), which reads and acts through ``Client.run_on_scheduler`` with
the same functions. Both run ``FleetController.cycle`` every ``policy.cycle_s`` until
closed; a failed cycle is logged and the next one starts from fresh state.
Imports ``distributed``. For front ends and users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from migctl.errors import MigctlError
from migctl.fleet.controller import FleetController
from migctl.fleet.host import Host
from migctl.fleet.policy import Policy
from migctl.fleet.scheduler_side import ClientLink, InProcessLink

log = logging.getLogger(__name__)


async def run_cycles(
    controller: FleetController, stop: asyncio.Event, cycles: int | None = None
) -> None:
    """Cycle every ``policy.cycle_s`` until ``stop`` is set (or ``cycles`` have run)."""
    done = 0
    while not stop.is_set() and (cycles is None or done < cycles):
        try:
            await controller.cycle()
        except (MigctlError, OSError) as error:
            log.warning("fleet cycle failed: %s", error)
        done += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), controller.policy.cycle_s)


class FleetPlugin(SchedulerPlugin):
    """Runs the fleet controller inside the scheduler."""

    name = "migctl-fleet"

    def __init__(self, hosts: Sequence[Host], policy: Policy | None = None) -> None:
        self.hosts = list(hosts)
        self.policy = policy or Policy()
        self.controller: FleetController | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, scheduler: Any) -> None:
        self._stop = asyncio.Event()
        self.controller = FleetController(
            self.hosts, InProcessLink(scheduler), scheduler.address, self.policy
        )
        self._task = asyncio.create_task(run_cycles(self.controller, self._stop))

    async def before_close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def run_external(
    client: Any,
    hosts: Sequence[Host],
    policy: Policy | None = None,
    *,
    stop: asyncio.Event | None = None,
    cycles: int | None = None,
) -> FleetController:
    """The controller as its own process, through an asynchronous ``distributed.Client``."""
    controller = FleetController(hosts, ClientLink(client), client.scheduler.address, policy)
    await run_cycles(controller, stop or asyncio.Event(), cycles)
    return controller
