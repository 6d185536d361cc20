"""The fleet controller inside the Dask scheduler (``FleetPlugin``) or beside it.

Why this exists: the controller reads the scheduler's own state, so its natural home is a
``SchedulerPlugin``: ``dask scheduler --preload migctl.fleet.plugin`` (policy settings with
``--fleet-policy NAME=VALUE``, e.g. ``--fleet-policy cycle_s=1``)
or ``client.register_plugin(FleetPlugin())``. Operators who keep the scheduler untouched run it
as its own process instead (``run_external``, ``migctl fleet controller``), which reads and acts
through ``Client.run_on_scheduler`` with the same functions. Either way:

* hosts are the node agents that report to the scheduler's registry (``fleet.registry``,
  ``fleet.agent_host``), or fixed ``Host`` objects given in this process;
* one controller per scheduler: each takes the registry's claim first; a second is refused with
  ``InUseError`` (the plugin's ``start`` raises it, so ``register_plugin`` fails);
* every ``policy.cycle_s`` the controller cycles, then publishes the fleet view and its metrics
  in the registry (``migctl fleet status`` / ``metrics``); a failed cycle is logged and the next
  one starts from fresh state. A restarted scheduler starts a fresh controller that rebuilds
  everything from the agents' reports (inventories, workers, leases).

The plugin also counts tasks Dask ran again (``tasks_rerun``: a task that reached memory twice)
and tasks whose running attempt was lost with its worker (``tasks_interrupted``).
Imports ``distributed``. For front ends and users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import click
from distributed.diagnostics.plugin import SchedulerPlugin

from migctl.errors import InUseError, MigctlError
from migctl.fleet.agent_host import AgentDirectory
from migctl.fleet.controller import FleetController
from migctl.fleet.host import Host
from migctl.fleet.policy import Policy
from migctl.fleet.registry import install, remote_claim, remote_drop_claim, remote_install
from migctl.fleet.scheduler_side import ClientLink, InProcessLink, SchedulerLink
from migctl.fleet.view import RerunCounter, publish_view

log = logging.getLogger(__name__)
PLUGIN_NAME = "migctl-fleet"


def controller_id(mode: str) -> str:
    return f"{mode}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_cycles(
    controller: FleetController,
    stop: asyncio.Event,
    cycles: int | None = None,
    *,
    after: Any = None,
) -> None:
    """Cycle every ``policy.cycle_s`` until ``stop`` is set (or ``cycles`` have run)."""
    done = 0
    while not stop.is_set() and (cycles is None or done < cycles):
        if controller.link.broken:
            raise OSError("the connection to the scheduler is closed")
        try:
            await controller.cycle()
            if after is not None:
                await after()
        except InUseError:
            raise  # another controller holds the scheduler now: this one must stop
        except (MigctlError, OSError) as error:
            log.warning("fleet cycle failed: %s", error)
        except Exception:  # a bug must not stop the controller: the next cycle starts afresh
            log.exception("fleet cycle failed")
        done += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), controller.policy.cycle_s)


def make_controller(
    hosts: Sequence[Host],
    link: SchedulerLink,
    address: str,
    policy: Policy,
    *,
    agents: bool,
    standby: bool,
) -> FleetController:
    directory = (
        AgentDirectory(link, policy, stale_s=max(10.0, 5 * policy.cycle_s)) if agents else None
    )
    return FleetController(hosts, link, address, policy, directory=directory, standby=standby)


class FleetPlugin(SchedulerPlugin):
    """Runs the fleet controller inside the scheduler (see the module docstring)."""

    name = PLUGIN_NAME

    def __init__(
        self,
        hosts: Sequence[Host] = (),
        policy: Policy | None = None,
        *,
        agents: bool = True,
        standby: bool = True,
    ) -> None:
        self.hosts = list(hosts)
        self.policy = policy or Policy()
        self.agents = agents
        self.standby = standby
        self.who = controller_id("plugin")
        self.controller: FleetController | None = None
        self.reruns = RerunCounter()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        install(scheduler).take_claim(self.who, "plugin", None, float("inf"))
        self._scheduler = scheduler
        self._stop = asyncio.Event()
        link = InProcessLink(scheduler)
        self.controller = make_controller(
            self.hosts,
            link,
            scheduler.address,
            self.policy,
            agents=self.agents,
            standby=self.standby,
        )
        controller = self.controller

        async def after() -> None:
            await publish_view(controller, link, "plugin", self.who, self.reruns)

        self._task = asyncio.create_task(run_cycles(controller, self._stop, after=after))

    async def before_close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._scheduler is not None:
            install(self._scheduler).drop_claim(self.who)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        self.reruns.transition(key, start, finish, kwargs.get("stimulus_id", ""))


@click.command()
@click.option(
    "--fleet-policy",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A controller policy setting, e.g. cycle_s=1 (repeat for more; see migctl.fleet.policy).",
)
def dask_setup(scheduler: Any, settings: tuple[str, ...]) -> None:
    """``dask scheduler --preload migctl.fleet.plugin``: the controller over node agents."""
    scheduler.add_plugin(FleetPlugin(policy=Policy.parse(settings)), name=PLUGIN_NAME)


async def run_external(
    client: Any,
    hosts: Sequence[Host] = (),
    policy: Policy | None = None,
    *,
    stop: asyncio.Event | None = None,
    cycles: int | None = None,
    agents: bool = True,
    standby: bool = True,
) -> FleetController:
    """The controller as its own process, through an asynchronous ``distributed.Client``.

    Raises ``InUseError`` when the scheduler already has a controller."""
    policy = policy or Policy()
    link = ClientLink(client)
    who = controller_id("external")
    ttl_s = max(10.0, 5 * policy.cycle_s)
    await client.run_on_scheduler(remote_install)
    await link.call(remote_claim, who, client.id, ttl_s)
    controller = make_controller(
        hosts, link, client.scheduler.address, policy, agents=agents, standby=standby
    )

    async def after() -> None:
        await link.call(remote_claim, who, client.id, ttl_s)
        await publish_view(controller, link, "external", who, None)

    try:
        await run_cycles(controller, stop or asyncio.Event(), cycles, after=after)
    finally:
        with contextlib.suppress(OSError, TimeoutError, MigctlError):
            await link.call(remote_drop_claim, who)
    return controller
