"""Random demand traces through the controller: every task runs once, reshapes stay bounded.

Hypothesis draws a starting layout and a short trace of tasks asking for MIG profiles
(some running a while); an in-process scheduler, workers and one simulated host with two
H100s (so results on a drained worker always have somewhere to go) run it
with the controller cycling (bounded). Every task must finish, each exactly once (a task
killed by a drain would run again), and the reshapes must not exceed the tasks (no loops).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from distributed import Client, Scheduler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migctl.dask import mig
from migctl.fleet.controller import FleetController
from migctl.fleet.scheduler_side import InProcessLink
from tests.fleet.simfleet import RAN, make_host, record
from tests.fleet.test_controller import FAST, run_until, start_workers, stop_all

LAYOUTS = (
    ["1g.10gb"] * 7,
    ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"],
    ["4g.40gb", "3g.40gb"],
)
PROFILES = ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb")
TRACES = st.lists(
    st.tuples(st.sampled_from(PROFILES), st.sampled_from((0.0, 0.3))), min_size=1, max_size=4
)


async def replay(directory: Path, layout: list[str], trace: list[tuple[str, float]]) -> int:
    host = make_host(directory, "trace-host", layout, gpus=2)
    async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
        controller = FleetController(
            [host], InProcessLink(scheduler), scheduler.address, FAST, standby=False
        )
        try:
            await start_workers(host, scheduler.address)
            async with Client(scheduler.address, asynchronous=True) as client:
                futures = [
                    client.submit(record, f"t{k}", seconds, resources=mig(p), pure=False)
                    for k, (p, seconds) in enumerate(trace)
                ]
                await run_until(controller, lambda: all(f.done() for f in futures), cycles=300)
                await client.gather(futures)
        finally:
            await stop_all(host)
    return controller.reshapes_done


@pytest.mark.timeout(280)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(LAYOUTS), TRACES)
def test_random_traces_finish_each_task_once_without_reshape_loops(
    layout: list[str], trace: list[tuple[str, float]]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        RAN.clear()
        reshapes = asyncio.run(replay(Path(name), layout, trace))
        assert sorted(label for label, _ in RAN) == sorted(f"t{k}" for k in range(len(trace)))
        assert reshapes <= len(trace)
