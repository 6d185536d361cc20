"""The fleet controller on an in-process Dask scheduler and workers over simulated hosts.

A task asking for a 3g.40gb on an H100 holding only 1g.10gb slices (one busy) gets idle
slices reshaped and runs; the busy slice stays; a drain waits for a running task; the
budgets defer; decisions are published as Dask events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from distributed import Client, Scheduler
from distributed.system import MEMORY_LIMIT

from migctl.dask import mig
from migctl.fleet.controller import FleetController
from migctl.fleet.node_host import NodeHost
from migctl.fleet.policy import Policy
from migctl.fleet.scheduler_side import TOPIC, InProcessLink
from migctl.model import Placement
from tests.fleet.simfleet import RAN, hold, make_host, record

pytestmark = pytest.mark.timeout(120)
SEVEN_ONES = ["1g.10gb"] * 7
FAST = Policy(cycle_s=0.05, drain_deadline_s=20, pending_deadline_s=30, stop_grace_s=2)


async def start_workers(host: NodeHost, address: str) -> None:
    for device in (await host.inventory()).devices:
        if not device.busy:
            await host.start_worker(device, address)


async def run_until(controller: FleetController, done: object, cycles: int = 200) -> int:
    """Cycle until ``done()`` (bounded); returns the cycles used."""
    for used in range(1, cycles + 1):
        await controller.cycle()
        if done():  # type: ignore[operator]
            return used
        await asyncio.sleep(0.05)
    raise AssertionError(f"not done after {cycles} cycles: {list(controller.decisions)}")


async def stop_all(host: NodeHost) -> None:
    for name in host.worker_names():
        await host.stop_worker(name, 2)


def test_a_waiting_3g_task_gets_idle_1g_slices_reshaped_around_a_busy_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = make_host(tmp_path, "host-a", SEVEN_ONES)
        busy = (await host.inventory()).device_at(0, Placement(1, 1))
        assert busy is not None
        hold(host, busy.uuid)
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            controller = FleetController(
                [host], InProcessLink(scheduler), scheduler.address, FAST, standby=False
            )
            try:
                await start_workers(host, scheduler.address)
                async with Client(scheduler.address, asynchronous=True) as client:
                    future = client.submit(record, "big", resources=mig("3g.40gb"), pure=False)
                    await run_until(controller, future.done)
                    name = await future
                    worker = next(w for w in scheduler.workers.values() if w.name == name)
                    assert worker.resources["mig-3g.40gb"] == 1
                    # the instance's memory; Dask caps a memory limit at the host's RAM
                    assert worker.memory_limit == min(40448 * 1024 * 1024, MEMORY_LIMIT)
                    events = await client.get_events(TOPIC)
            finally:
                await stop_all(host)
        kinds = [message["kind"] for _, message in events]
        assert kinds[:1] == ["reshape-planned"] and "reshaped" in kinds
        inventory = await host.inventory()
        after = inventory.device_at(0, Placement(1, 1))
        assert after is not None and after.uuid == busy.uuid and after.gi_id == busy.gi_id
        profiles = sorted((d.profile, d.placement.start) for d in inventory.devices)
        assert ("3g.40gb", 4) in profiles
        assert len([p for p in profiles if p[0] == "1g.10gb"]) == 4
        assert controller.reshapes_done == 1

    RAN.clear()
    asyncio.run(scenario())
    assert [label for label, _ in RAN] == ["big"]


def test_a_drain_waits_for_the_running_task_and_never_runs_it_twice(tmp_path: Path) -> None:
    """The only free room is under a worker still running a task: it finishes first."""

    async def scenario() -> None:
        host = make_host(tmp_path, "host-b", ["4g.40gb", "3g.40gb"])
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            controller = FleetController(
                [host], InProcessLink(scheduler), scheduler.address, FAST, standby=False
            )
            try:
                await start_workers(host, scheduler.address)
                async with Client(scheduler.address, asynchronous=True) as client:
                    slow = client.submit(record, "slow", 1.5, resources=mig("3g.40gb"), pure=False)
                    await asyncio.sleep(0.5)  # it runs now on the 3g worker
                    wide = client.submit(record, "two", resources=mig("2g.20gb"), pure=False)
                    await run_until(controller, wide.done)
                    await slow
                    await wide
            finally:
                await stop_all(host)
        kinds = [m["kind"] for m in controller.decisions]
        assert "drained" in kinds and "reshaped" in kinds

    RAN.clear()
    asyncio.run(scenario())
    assert sorted(label for label, _ in RAN) == ["slow", "two"]


def test_results_with_nowhere_to_go_pin_their_worker_instead_of_looping(tmp_path: Path) -> None:
    """A whole-GPU task on a one-GPU fleet whose 1g worker holds a result: the drain stops at
    once (nobody can take the result), the worker is pinned (no re-plan), and once the
    result is released the reshape goes through."""
    policy = Policy(cycle_s=0.05, drain_deadline_s=1, pending_deadline_s=4, stop_grace_s=2)

    async def scenario() -> list[str]:
        host = make_host(tmp_path, "host-c", SEVEN_ONES)
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            controller = FleetController(
                [host], InProcessLink(scheduler), scheduler.address, policy, standby=False
            )
            try:
                await start_workers(host, scheduler.address)
                async with Client(scheduler.address, asynchronous=True) as client:
                    small = client.submit(record, "small", resources=mig("1g.10gb"), pure=False)
                    await small
                    whole = client.submit(record, "whole", resources=mig("7g.80gb"), pure=False)
                    for _ in range(40):  # two seconds: twice the drain deadline
                        await controller.cycle()
                        await asyncio.sleep(0.05)
                    kinds = [m["kind"] for m in controller.decisions]
                    assert kinds.count("reshape-planned") == 1, "; ".join(
                        str(m) for m in controller.decisions
                    )
                    aborted = [m for m in controller.decisions if m["kind"] == "drain-aborted"]
                    assert "no other worker can take them" in aborted[0]["reason"]
                    del small
                    await run_until(controller, whole.done)
                    await whole
            finally:
                await stop_all(host)
        return [m["kind"] for m in controller.decisions]

    RAN.clear()
    kinds = asyncio.run(scenario())
    assert kinds.count("reshaped") == 1
    assert sorted(label for label, _ in RAN) == ["small", "whole"]
