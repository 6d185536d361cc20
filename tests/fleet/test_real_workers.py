"""Integration: a real ``migctl run ... -- dask worker`` process on a simulated MIG device.

The worker holds the device's lease (in the host's own lease store), sees
``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` and offers the device's resources; stopping it ends its
process group and its lease; a worker killed with SIGKILL is reaped by its host and its lease
ends by the store's liveness rules.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from distributed import Client, Scheduler

from migctl.fleet.launch import SubprocessLauncher
from tests.fleet.simfleet import leases_of, make_host

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
LAUNCHER = SubprocessLauncher(
    migctl=(sys.executable, "-m", "migctl"),
    dask=(sys.executable, "-m", "distributed.cli.dask_worker"),
)


def _visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


async def _registered(scheduler: Scheduler, name: str) -> None:
    for _ in range(600):  # the worker process starts in a few seconds
        if any(w.name == name for w in scheduler.workers.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never registered")


def test_a_real_worker_holds_its_device_and_stops_with_its_group(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = make_host(tmp_path, "real-a", ["3g.40gb", "1g.10gb"], launcher=LAUNCHER)
        device = next(d for d in (await host.inventory()).devices if d.profile == "3g.40gb")
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            name = await host.start_worker(device, scheduler.address)
            try:
                await _registered(scheduler, name)
                worker = next(w for w in scheduler.workers.values() if w.name == name)
                assert worker.resources["mig-3g.40gb"] == 1
                async with Client(scheduler.address, asynchronous=True) as client:
                    seen = await client.run(_visible_devices)
                assert list(seen.values()) == [device.uuid]
                assert leases_of(host) == [device.uuid]
                mine = (await host.inventory()).device_at(device.gpu, device.placement)
                assert mine is not None and mine.worker == name and not mine.busy
            finally:
                await host.stop_worker(name, 5)
        assert leases_of(host) == []

    asyncio.run(scenario())


def test_a_sigkilled_worker_is_reaped_and_its_lease_ends(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = make_host(tmp_path, "real-b", ["3g.40gb", "1g.10gb"], launcher=LAUNCHER)
        device = next(d for d in (await host.inventory()).devices if d.profile == "1g.10gb")
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            name = await host.start_worker(device, scheduler.address)
            await _registered(scheduler, name)
            pid = host.workers()[0].pid
            assert pid is not None
            os.killpg(pid, signal.SIGKILL)  # the whole group: migctl run and its worker
            for _ in range(200):
                dead = host.reap()
                if dead:
                    break
                await asyncio.sleep(0.05)
            assert [d.name for d in dead] == [name]
            assert host.worker_names() == []
        # its holder died: the store ends the lease once the worker has exited (SIGKILL is
        # not instantaneous: the group's leader may be reaped before the worker is gone)
        for _ in range(300):
            if not leases_of(host):
                break
            await asyncio.sleep(0.1)
        assert leases_of(host) == []
        after = (await host.inventory()).device_at(device.gpu, device.placement)
        assert after is not None and not after.busy and after.worker is None

    asyncio.run(scenario())
