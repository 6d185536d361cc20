"""Random demand traces through the controller: every task runs once, reshapes stay bounded.

Hypothesis draws a starting layout, a device held busy by a live process (or none) and a short
trace of tasks asking for MIG profiles (some running a while); an in-process scheduler, workers
and one simulated host with two H100s (so results on a drained worker always have somewhere to
go) run it with the controller cycling (bounded), standby workers on. Every task must finish,
each exactly once (a task killed by a drain would run again); the reshapes must not exceed the
tasks (no loops); the busy device is still there, same UUID and placement (0 busy instances
destroyed); every GPU's layout is legal (each instance at a placement its profile allows, no
two sharing a memory slice).
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
from migctl.fleet.host import HostInventory
from migctl.fleet.scheduler_side import InProcessLink
from tests.fleet.simfleet import RAN, hold, make_host, record
from tests.fleet.test_controller import FAST, run_until, stop_all

LAYOUTS = (
    ["1g.10gb"] * 7,
    ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"],
    ["4g.40gb", "3g.40gb"],
)
PROFILES = ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb")
TRACES = st.lists(
    st.tuples(st.sampled_from(PROFILES), st.sampled_from((0.0, 0.3))), min_size=1, max_size=4
)


def legal(inventory: HostInventory) -> bool:
    for gpu in inventory.gpus:
        used: set[int] = set()
        for instance in gpu.instances:
            profile = gpu.model.gi_profile(instance.profile)
            if profile is None or instance.placement not in profile.placements:
                return False
            slices = set(
                range(instance.placement.start, instance.placement.start + instance.placement.size)
            )
            if used & slices:
                return False
            used |= slices
    return True


async def replay(
    directory: Path, layout: list[str], held: int | None, trace: list[tuple[str, float]]
) -> tuple[int, tuple[str, object] | None, HostInventory]:
    host = make_host(directory, "trace-host", layout, gpus=2)
    busy = None
    if held is not None:
        device = sorted((await host.inventory()).devices, key=lambda d: (d.gpu, d.placement.start))[
            held
        ]
        hold(host, device.uuid)
        busy = (device.uuid, device.placement)
    async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
        controller = FleetController([host], InProcessLink(scheduler), scheduler.address, FAST)
        try:
            await controller.cycle()  # standby: a worker on every idle device
            async with Client(scheduler.address, asynchronous=True) as client:
                futures = [
                    client.submit(record, f"t{k}", seconds, resources=mig(p), pure=False)
                    for k, (p, seconds) in enumerate(trace)
                ]
                await run_until(controller, lambda: all(f.done() for f in futures), cycles=300)
                await client.gather(futures)
        finally:
            await stop_all(host)
    return controller.reshapes_done, busy, await host.inventory()


@pytest.mark.timeout(280)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(LAYOUTS), st.sampled_from((None, 0, 1)), TRACES)
def test_random_traces_finish_each_task_once_without_reshape_loops(
    layout: list[str], held: int | None, trace: list[tuple[str, float]]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        RAN.clear()
        reshapes, busy, after = asyncio.run(replay(Path(name), layout, held, trace))
        assert sorted(label for label, _ in RAN) == sorted(f"t{k}" for k in range(len(trace)))
        assert reshapes <= len(trace)
        if busy is not None:
            assert busy in {(d.uuid, d.placement) for d in after.devices}
        assert legal(after)
