"""Integration: a real ``migctl run ... -- dask worker`` process on a simulated MIG device.

The worker holds the device's lease, sees ``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` and offers
the device's resources; stopping it ends its process group and its lease.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from distributed import Client, Scheduler

from migctl.fleet.local_host import LocalHost
from tests.fleet.simfleet import isolated_state, make_host

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_a_real_worker_holds_its_device_and_stops_with_its_group(tmp_path: Path) -> None:
    async def scenario() -> None:
        made = make_host(tmp_path, "real-a", ["3g.40gb", "1g.10gb"])
        host = LocalHost(
            "real-a",
            sim=made.sim,
            subprocess=True,
            command_prefix=(sys.executable, "-m", "migctl"),
            dask_command=(sys.executable, "-m", "distributed.cli.dask_worker"),
            env={"MIGCTL_SIM": str(made.sim)},
        )
        device = next(d for d in host.inventory().devices if d.profile == "3g.40gb")
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            name = await host.start_worker(device, scheduler.address)
            try:
                for _ in range(600):  # the worker process starts in a few seconds
                    if any(w.name == name for w in scheduler.workers.values()):
                        break
                    await asyncio.sleep(0.05)
                worker = next(w for w in scheduler.workers.values() if w.name == name)
                assert worker.resources["mig-3g.40gb"] == 1
                async with Client(scheduler.address, asynchronous=True) as client:
                    seen = await client.run(_visible_devices)
                assert list(seen.values()) == [device.uuid]
                with host._store() as store:
                    assert [lease.uuid for lease in store.list_leases()] == [device.uuid]
            finally:
                await host.stop_worker(name, 5)
        with host._store() as store:
            assert store.list_leases() == []

    with isolated_state(tmp_path):
        asyncio.run(scenario())
