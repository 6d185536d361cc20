"""The fleet view's counters on a real in-process scheduler: a task whose result was lost with
its worker and computed again is counted as re-run (once), a task that ran once is not.
"""

from __future__ import annotations

import asyncio

import pytest
from distributed import Client, Scheduler, Worker

from migctl.fleet.plugin import FleetPlugin
from migctl.fleet.policy import Policy

pytestmark = pytest.mark.timeout(120)
RUNS: list[int] = []


def count(x: int) -> int:
    RUNS.append(x)
    return x + 1


def test_a_lost_result_computed_again_is_counted_as_a_rerun() -> None:
    async def scenario() -> tuple[int, int]:
        plugin = FleetPlugin(policy=Policy(cycle_s=60), agents=False, standby=False)
        async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
            await scheduler.register_scheduler_plugin(plugin, idempotent=False)
            async with (
                Worker(scheduler.address, nthreads=1, host="127.0.0.1") as first,
                Worker(scheduler.address, nthreads=1, host="127.0.0.1") as second,
                Client(scheduler.address, asynchronous=True) as client,
            ):
                a = client.submit(count, 1, workers=[first.address], allow_other_workers=True)
                assert await a == 2
                await first.close()  # gone without handing its results on
                b = client.submit(count, a, workers=[second.address])
                assert await b == 3
        return plugin.reruns.rerun, plugin.reruns.interrupted

    RUNS.clear()
    rerun, interrupted = asyncio.run(scenario())
    assert sorted(RUNS) == [1, 1, 2]  # a ran twice, b once
    assert (rerun, interrupted) == (1, 0)
