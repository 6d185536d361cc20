"""The steps of a reshape with a scripted scheduler and host: what the drain waits for, when it
gives up, and that nothing running is ever stopped.

A fake link answers the scheduler-side calls (``executing_count`` from a script, ``retire``
and ``reopen`` recorded); a fake host records its calls. The clock is the test's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from migctl.fleet.host import Device, HostInventory
from migctl.fleet.policy import Policy
from migctl.fleet.reshapes import Reshape, Reshapes
from migctl.fleet.scheduler_side import (
    Snapshot,
    WorkerView,
    executing_count,
    publish,
    reopen,
    retire,
)
from migctl.planner.fleet_model import GpuTarget

POLICY = Policy(drain_deadline_s=10, pending_deadline_s=30, retry_backoff_s=5)


class Link:
    def __init__(self, running: list[int]) -> None:
        self.running = running  # executing_count answers, one per call (last one repeats)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def broken(self) -> bool:
        return False

    async def call(self, function: Any, *args: Any) -> Any:
        self.calls.append((function.__name__, args))
        if function is executing_count:
            return self.running.pop(0) if len(self.running) > 1 else self.running[0]
        if function is retire:
            return list(args[0])
        if function in (reopen, publish):
            return True
        raise AssertionError(function)


class Host:
    name = "h"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[str] = []

    async def inventory(self) -> HostInventory:
        return HostInventory("h", (), ())

    async def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory:
        self.calls.append("apply")
        if self.fail:
            from migctl.errors import DriverError

            raise DriverError("the driver refused")
        return HostInventory("h", (), ())

    async def start_worker(self, device: Device, scheduler: str) -> str:
        self.calls.append(f"start {device.uuid}")
        return "w"

    async def stop_worker(self, name: str, grace_s: float) -> None:
        self.calls.append(f"stop {name}")


async def settled(reshapes: Reshapes) -> None:
    """Wait for the host's reshape the controller started in the background."""
    applying = reshapes.pending[1].applying
    assert applying is not None
    await applying


def snapshot() -> Snapshot:
    return Snapshot((), (WorkerView("tcp://w1", "w1", "closing_gracefully", (), 0, 0, ()),))


def setup(running: list[int], fail: bool = False) -> tuple[Reshapes, Link, Host, list[float]]:
    now = [0.0]
    link = Link(running)
    host = Host(fail)
    reshapes = Reshapes(link, "tcp://s", POLICY, lambda: now[0])
    reshapes.hosts = {"h": host}
    target = GpuTarget("h", 0, "h100", (), (), ())
    reshape = Reshape(1, "h", 0, target, Counter(), 30.0, 0.0, drain={"tcp://w1": "w1"})
    reshapes.pending[1] = reshape
    return reshapes, link, host, now


def test_the_drain_waits_while_the_worker_executes_then_retires_and_stops_it() -> None:
    reshapes, link, host, now = setup([1, 1, 0])

    async def scenario() -> None:
        for t in (1.0, 2.0):
            now[0] = t
            await reshapes.advance(reshapes.pending[1], snapshot())
            assert host.calls == [] and reshapes.pending[1].phase == "draining"
        now[0] = 3.0
        await reshapes.advance(reshapes.pending[1], snapshot())
        await settled(reshapes)

    asyncio.run(scenario())
    assert ("retire", (["tcp://w1"], True, True)) in link.calls
    assert host.calls[:2] == ["stop w1", "apply"]
    assert reshapes.pending[1].phase == "starting"


def test_a_drain_past_its_deadline_is_aborted_and_nothing_running_is_stopped() -> None:
    reshapes, link, host, now = setup([1])

    async def scenario() -> None:
        for t in (5.0, 11.0):
            now[0] = t
            await reshapes.advance(reshapes.pending[1], snapshot())

    asyncio.run(scenario())
    assert host.calls == []  # never stopped, never reshaped
    assert ("reopen", ("tcp://w1",)) in link.calls
    assert reshapes.pending[1].phase == "aborted" and reshapes.pinned["w1"] == 11.0 + 30.0
    assert [d["kind"] for d in reshapes.decisions] == ["drain-aborted"]


def test_a_failed_reshape_leaves_the_gpu_out_for_the_retry_backoff() -> None:
    reshapes, _, host, now = setup([0], fail=True)

    async def scenario() -> None:
        now[0] = 1.0
        await reshapes.advance(reshapes.pending[1], snapshot())
        await settled(reshapes)
        for _ in range(3):
            await reshapes.advance(reshapes.pending[1], snapshot())

    asyncio.run(scenario())
    assert host.calls == ["stop w1", "apply"]  # tried once, not again
    assert reshapes.pending[1].phase == "aborted"
    assert reshapes.failed[("h", 0)] == 1.0 + POLICY.retry_backoff_s
    assert [d["kind"] for d in reshapes.decisions][-1] == "reshape-failed"
