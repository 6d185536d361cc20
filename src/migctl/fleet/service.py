"""The fleet's long-running processes and one-shot reads, for the CLI and ``MigCluster``.

Why this exists: ``migctl fleet agent`` and ``migctl fleet controller`` run until SIGTERM or
SIGINT, reconnect when the scheduler goes away and come back to a fresh one (a restarted
scheduler), and must end cleanly (an agent stops its workers). ``migctl fleet status`` and
``metrics`` ask the scheduler's registry once. The CLI parses options and calls one function
here. A scheduler that cannot be reached is an ``InvalidStateError`` naming it.
Imports ``distributed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migctl.errors import InUseError, InvalidStateError, MigctlError, NotFoundError
from migctl.fleet.agent import Agent
from migctl.fleet.launch import SubprocessLauncher
from migctl.fleet.node_host import HeldNode, NodeHost
from migctl.fleet.plugin import run_external
from migctl.fleet.policy import Policy
from migctl.fleet.registry import METRICS_HANDLER, STATUS_HANDLER
from migctl.schemas.fleet import FleetStatusOut
from migctl.settings import Settings

if TYPE_CHECKING:
    from migctl.node.protocol import Node

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
RETRY_S = 1.0


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM / SIGINT set ``stop``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await main(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def agent_for(
    settings: Settings,
    *,
    node_url: str | None,
    name: str | None,
    scheduler: str,
    heartbeat_s: float,
    stop_grace_s: float,
    soft_shares: tuple[int, ...] = (),
) -> Agent:
    """The agent of this host: over its daemon (``node_url``), else over the machine of
    ``settings`` (a simulated one with ``sim``), which it owns: an apply a crash interrupted
    is finished first (``recover``), as the daemon does when it starts. ``soft_shares``: a
    worker per share on each GPU without MIG."""
    from migctl.node.open import connect, open_node

    if node_url is not None:
        node: Node = connect(node_url, settings=settings)
        default = socket.gethostname()
        recovered = None
    else:
        node = open_node(settings=settings)
        default = Path(settings.sim).stem if settings.sim else socket.gethostname()
        try:
            recovered = node.recover().mode
        except MigctlError as error:
            recovered = f"failed: {error.message}"
    launcher = SubprocessLauncher(
        migctl=(sys.executable, "-m", "migctl"),
        dask=(sys.executable, "-m", "distributed.cli.dask_worker"),
    )
    agent = Agent(
        NodeHost(name or default, HeldNode(node), launcher, soft_shares),
        scheduler,
        heartbeat_s,
        stop_grace_s,
    )
    if recovered not in (None, "nothing"):
        agent.note("node-recovered", mode=recovered)
    return agent


def run_agent(agent: Agent) -> None:
    """``migctl fleet agent``: serve until signalled; the agent's workers stop with it."""
    asyncio.run(until_signalled(agent.run))


def run_controller(scheduler: str, policy: Policy) -> None:
    """``migctl fleet controller``: the external controller, reconnecting to the scheduler
    (a restarted one gets a fresh controller state, rebuilt from the agents' reports).
    ``InUseError`` when the scheduler already has a controller."""

    async def main(stop: asyncio.Event) -> None:
        from distributed import Client

        while not stop.is_set():
            try:
                async with Client(
                    scheduler, asynchronous=True, timeout=CONNECT_TIMEOUT_S
                ) as client:
                    await run_external(client, policy=policy, stop=stop)
            except InUseError:
                raise
            except (OSError, TimeoutError) as error:
                log.warning("fleet controller: scheduler %s: %s", scheduler, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)

    asyncio.run(until_signalled(main))


async def _ask(scheduler: str, op: str, timeout_s: float) -> Any:
    from distributed import Client

    try:
        async with Client(scheduler, asynchronous=True, timeout=timeout_s) as client:
            return await getattr(client.scheduler, op)()
    except (OSError, TimeoutError) as error:
        raise InvalidStateError(
            f"cannot reach the Dask scheduler at {scheduler}: {error}",
            hint="give the scheduler's address (tcp://HOST:8786) with --scheduler",
            context={"scheduler": scheduler},
        ) from error


def _no_controller(scheduler: str) -> NotFoundError:
    return NotFoundError(
        f"the Dask scheduler at {scheduler} has no fleet controller (or it has not finished "
        "a cycle yet)",
        hint="start one: `dask scheduler --preload migctl.fleet.plugin`, or "
        "`migctl fleet controller --scheduler ADDR`",
        context={"scheduler": scheduler},
    )


def read_status(scheduler: str, timeout_s: float = CONNECT_TIMEOUT_S) -> FleetStatusOut:
    raw = asyncio.run(_ask(scheduler, STATUS_HANDLER, timeout_s))
    if raw is None:
        raise _no_controller(scheduler)
    return FleetStatusOut.model_validate(raw)


def read_metrics(scheduler: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    text = asyncio.run(_ask(scheduler, METRICS_HANDLER, timeout_s))
    if not text:
        raise _no_controller(scheduler)
    return str(text)
