"""Soft-share workers: a host's GPUs without MIG get a Dask worker per MPS share.

In one process: a scheduler with the controller plugin, an agent over a simulated L40S host
(no MIG) given shares 50,25,25, in-process workers leasing their soft devices through the node.
Tasks asking ``soft(...)`` run there; they are never MIG demand (nothing is reshaped); the fleet
view lists the soft devices with isolation soft; every lease and MPS daemon ends afterwards.
A new agent adopts a soft worker an earlier one left running.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from distributed import Client

from migctl.cli.main import run
from migctl.dask import mig, soft
from migctl.errors import InvalidInputError
from migctl.fleet.launch import SubprocessLauncher
from migctl.fleet.node_host import NodeHost, ReopenedNode
from migctl.fleet.registry import EXTENSION
from migctl.fleet.resources import demands_of, is_gpu_request
from migctl.fleet.soft_workers import check_soft_shares, soft_lease_request, soft_worker_name
from migctl.fleet.workers import SoftWorkerShare, soft_worker_command
from migctl.node.open import open_node
from migctl.schemas.fleet import FleetStatusOut
from tests.fleet.simfleet import RAN, machine_file, opener, record
from tests.fleet.test_agents import fleet, published, until
from tests.unit.soft_nodes import end_daemons

pytestmark = pytest.mark.timeout(120)
L40S_MIB = 46068
GIB = 1024**3


def soft_host(directory: Path, name: str, shares: tuple[int, ...]) -> tuple[NodeHost, Path]:
    path = machine_file(directory, name, 1, model="l40s")
    return NodeHost(name, ReopenedNode(partial(opener, path)), soft_shares=shares), path


def test_soft_requests_are_not_mig_demand() -> None:
    tasks = [soft(25), soft(50, mem="8GiB"), mig("1g.10gb")]
    assert [is_gpu_request(t) for t in tasks] == [False, False, True]
    _, demands = demands_of(tasks)
    assert len(demands) == 1 and demands[0].profiles == ("1g.10gb",)
    assert soft(25) == {"soft-share": 25.0, "soft-device": 1.0}
    assert soft(25, mem="8GiB")["gpu-mem-gib"] == 8.0


@pytest.mark.parametrize("share", [0, 101, 12.5, True])
def test_bad_soft_helper_shares_are_refused(share: object) -> None:
    with pytest.raises(InvalidInputError, match="whole percent"):
        soft(share)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shares", "match"),
    [((60, 50), "sum to 110%"), ((0,), "from 1 to 100"), ((1,) * 9, "at most 8")],
)
def test_bad_host_soft_shares_are_refused(shares: tuple[int, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        check_soft_shares(shares)


def test_a_soft_worker_command_leases_its_share_and_limits_memory() -> None:
    share = SoftWorkerShare(0, "GPU-abc", 25, 11517)
    argv = soft_worker_command("tcp://127.0.0.1:8786", share, "h:GPU-abc:soft-1")
    assert argv[:10] == [
        "migctl", "run", "--share", "25%", "--parent", "GPU-abc", "--memory", "11517MiB",
        "--job", "h:GPU-abc:soft-1",
    ]  # fmt: skip
    assert argv[argv.index("--memory-limit") + 1] == str(11517 * 1024 * 1024)
    assert argv[argv.index("--resources") + 1] == "gpu-mem-gib=11.247 soft-device=1 soft-share=25"


def test_soft_workers_run_soft_tasks_and_are_never_reshaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, path = soft_host(tmp_path, "soft-a", (50, 25, 25))

    async def scenario() -> tuple[dict[str, dict[str, float]], dict[str, int], FleetStatusOut, str]:
        async with fleet([host]) as scheduler:
            await until(lambda: len(scheduler.workers) == 3)
            seen = {str(ws.name): dict(ws.resources) for ws in scheduler.workers.values()}
            limits = {str(ws.name): ws.memory_limit for ws in scheduler.workers.values()}
            async with Client(scheduler.address, asynchronous=True) as client:
                half = client.submit(record, "half", resources=soft(50), pure=False)
                quarter = client.submit(record, "quarter", resources=soft(25), pure=False)
                assert await asyncio.wait_for(client.gather([half, quarter]), 60)
                status = await published(
                    client, lambda s: any(h.soft for h in s.hosts) and s.controller.cycles > 2
                )
                capsys.readouterr()
                argv = ["fleet", "status", "--scheduler", scheduler.address]
                assert await asyncio.to_thread(run, argv) == 0
                metrics = scheduler.extensions[EXTENSION].metrics
        return seen, limits, status, metrics

    RAN.clear()
    try:
        seen, limits, status, metrics = asyncio.run(scenario())
        with open_node(sim=str(path)) as node:
            assert node.leases() == []  # the agent stopped its workers; their leases ended
    finally:
        with open_node(sim=str(path)) as node:
            end_daemons(node)
    shares = sorted(r["soft-share"] for r in seen.values())
    assert shares == [25.0, 25.0, 50.0]
    assert all(r["soft-device"] == 1.0 for r in seen.values())
    assert sorted(limits.values()) == sorted(L40S_MIB * p // 100 * 1024**2 for p in (25, 25, 50))
    assert max(limits.values()) < L40S_MIB * 1024**2 // 2 + GIB  # never the whole GPU
    ran = dict(RAN)
    assert seen[ran["half"]]["soft-share"] == 50.0
    assert seen[ran["quarter"]]["soft-share"] >= 25.0
    (shown,) = status.hosts
    assert sorted(s.percent for s in shown.soft) == [25, 25, 50]
    assert {s.isolation for s in shown.soft} == {"soft"}
    assert {s.worker for s in shown.soft} == set(seen)
    assert shown.gpus == [] and status.controller.reshapes_done == 0
    assert "reshape-planned" not in status.controller.counts
    labels = 'host="soft-a",isolation="soft",share="{}",state="worker"'
    assert f"migctl_fleet_soft_devices{{{labels.format('25%')}}} 2.0" in metrics, metrics
    assert f"migctl_fleet_soft_devices{{{labels.format('50%')}}} 1.0" in metrics
    shown_text = capsys.readouterr()
    rows = [line for line in shown_text.out.splitlines() if "SOFT-" in line]
    assert len(rows) == 3 and all("isolation soft" in row for row in rows), shown_text
    assert "soft 50% 23034 MiB" in shown_text.out
    assert "isolation soft: soft devices share their parent" in shown_text.out


def test_a_new_agent_adopts_a_soft_worker_left_running_and_stops_its_group(
    tmp_path: Path,
) -> None:
    """An earlier agent died; its soft worker (here a sleeping process holding the share's lease
    under the worker's name) is taken over, not started twice, and stopped by its group."""
    host, path = soft_host(tmp_path, "soft-b", (50,))
    host.launcher = SubprocessLauncher(migctl=("true",), log_dir=tmp_path)  # would start nothing
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        with open_node(sim=str(path)) as node:
            gpu = node.inventory().gpus[0].info
            name = soft_worker_name("soft-b", gpu.uuid, 0)
            share = SoftWorkerShare(0, gpu.uuid, 50, L40S_MIB // 2)
            node.acquire(soft_lease_request(share, name, orphan.pid))

        async def scenario() -> tuple[list[str], list[str]]:
            adopted = await host.adopt()
            started, failed = await host.ensure_soft_workers("tcp://127.0.0.1:9", 0.0)
            assert failed == [] and host.worker_names() == [name]
            await host.stop_worker(name, 5)
            return adopted, started

        adopted, started = asyncio.run(scenario())
        assert adopted == [name] and started == []  # not started a second time
        assert orphan.wait(10) == -signal.SIGTERM  # its group was stopped
    finally:
        orphan.kill()
        orphan.wait()
        with open_node(sim=str(path)) as node:
            end_daemons(node)
