"""Node agents and the controller plugin in one process: the whole protocol over Dask's comms.

An in-process scheduler runs ``FleetPlugin``; two agents (each a ``NodeHost`` over its own
simulated machine, with in-process workers) report through the registry and carry out its
orders. A task asking for a 3g.40gb gets a GPU of 1g.10gb slices reshaped around a busy one;
a second controller is refused; the fleet view and metrics name every host.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from distributed import Client, Scheduler

from migctl.dask import mig
from migctl.errors import InUseError
from migctl.fleet.agent import Agent
from migctl.fleet.node_host import NodeHost
from migctl.fleet.plugin import FleetPlugin, run_external
from migctl.fleet.policy import Policy
from migctl.fleet.registry import EXTENSION, STATUS_HANDLER
from migctl.model import Placement
from migctl.schemas.fleet import FleetStatusOut
from tests.fleet.simfleet import RAN, hold, leases_of, make_host, record

pytestmark = pytest.mark.timeout(120)
SEVEN_ONES = ["1g.10gb"] * 7
FAST = Policy(cycle_s=0.1, drain_deadline_s=20, pending_deadline_s=30, stop_grace_s=2)


@asynccontextmanager
async def fleet(hosts: Sequence[NodeHost], policy: Policy = FAST) -> AsyncIterator[Scheduler]:
    """A scheduler with the plugin, and an agent per host; everything stopped afterwards."""
    stop = asyncio.Event()
    async with Scheduler(
        host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0"
    ) as scheduler:
        await scheduler.register_scheduler_plugin(FleetPlugin(policy=policy), idempotent=False)
        agents = [Agent(h, scheduler.address, heartbeat_s=0.1, stop_grace_s=2) for h in hosts]
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        try:
            yield scheduler
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def until(check: object, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def http_get(scheduler: Scheduler, path: str) -> str:
    """GET ``path`` from the scheduler's own web server."""
    from tornado.httpclient import AsyncHTTPClient

    port = scheduler.http_server.port  # type: ignore[attr-defined]
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}{path}")
    return str(response.body.decode())


async def published(client: Client, ready: object, seconds: float = 30.0) -> FleetStatusOut:
    """The fleet view the controller publishes after a cycle, once ``ready(view)``."""
    for _ in range(int(seconds / 0.05)):
        raw = await getattr(client.scheduler, STATUS_HANDLER)()
        if raw is not None and ready(status := FleetStatusOut.model_validate(raw)):  # type: ignore[operator]
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("no such fleet view published in time")


def test_agents_reshape_for_a_waiting_3g_task_and_report_the_fleet(tmp_path: Path) -> None:
    async def scenario() -> FleetStatusOut:
        a = make_host(tmp_path, "agent-a", SEVEN_ONES)
        b = make_host(tmp_path, "agent-b", SEVEN_ONES)
        for host in (a, b):
            busy = (await host.inventory()).device_at(0, Placement(1, 1))
            assert busy is not None
            hold(host, busy.uuid)
        async with fleet([a, b]) as scheduler:
            await until(lambda: len(scheduler.workers) == 12)  # 6 idle slices on each host
            async with Client(scheduler.address, asynchronous=True) as client:
                big = client.submit(record, "big", resources=mig("3g.40gb"), pure=False)
                assert await asyncio.wait_for(big, 60)
                status = await published(client, lambda s: s.controller.reshapes_done > 0)
                metrics = scheduler.extensions[EXTENSION].metrics
                served = await http_get(scheduler, "/migctl/fleet.json")
                scraped = await http_get(scheduler, "/migctl/metrics")
        assert json.loads(served)["kind"] == "FleetStatus"
        assert 'migctl_fleet_host_up{host="agent-b"} 1.0' in scraped
        assert 'migctl_fleet_host_up{host="agent-a"} 1.0' in metrics
        assert 'migctl_fleet_host_up{host="agent-b"} 1.0' in metrics
        assert a.worker_names() == [] and b.worker_names() == []  # the agents stopped them
        assert leases_of(a) == [] and leases_of(b) == []
        return status

    RAN.clear()
    status = asyncio.run(scenario())
    assert [label for label, _ in RAN] == ["big"]
    assert [h.name for h in status.hosts] == ["agent-a", "agent-b"]
    assert status.controller.reshapes_done == 1 and status.controller.tasks_rerun == 0
    assert status.controller.counts["reshaped"] == 1
    profiles = {
        (h.name, s.profile, s.placement.start, s.busy)
        for h in status.hosts
        for g in h.gpus
        for s in g.slices
    }
    assert {("agent-a", "1g.10gb", 1, True), ("agent-b", "1g.10gb", 1, True)} <= profiles
    assert sum(1 for p in profiles if p[1] == "3g.40gb") == 1


def test_a_second_controller_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with fleet([]) as scheduler:
            with pytest.raises(InUseError, match="already has a fleet controller"):
                await scheduler.register_scheduler_plugin(
                    FleetPlugin(policy=FAST), name="another", idempotent=False
                )
            async with Client(scheduler.address, asynchronous=True) as client:
                with pytest.raises(InUseError, match="already has a fleet controller"):
                    await run_external(client, policy=FAST, cycles=1)

    asyncio.run(scenario())
