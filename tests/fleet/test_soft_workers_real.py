"""Integration: real soft-share workers, ``migctl run --share P% --parent GPU -- dask worker``.

A ``MigCluster`` host of one simulated L40S (no MIG) given shares 50,50: its agent process starts
two worker processes under ``migctl run --share``; each holds a soft lease, sees the MPS
variables of its share (SM percentage, pinned memory limit, the GPU's MPS pipe directory), and
offers its share; a ``soft(...)`` task runs there and nothing is reshaped; a worker killed with
its group is started again by the agent; ``close()`` leaves no process (workers, their MPS
daemon) behind.
"""

from __future__ import annotations

import os

import pytest

from migctl.dask import soft
from migctl.fleet.cluster import MigCluster
from migctl.fleet.policy import Policy
from migctl.fleet.simhosts import SimHost
from tests.fleet.procs import kill_group, kinds, wait_gone, waited

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
POLICY = Policy(cycle_s=0.5, stop_grace_s=5)
L40S_MIB = 46068


def mps_environment() -> dict[str, str]:
    keys = ("CUDA_VISIBLE_DEVICES", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE")
    found = {k: os.environ.get(k, "") for k in keys}
    found["limit"] = os.environ.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "")
    found["pipe"] = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "")
    return found


def test_real_soft_workers_hold_their_shares_and_run_soft_tasks() -> None:
    host = SimHost("soft-r", model="l40s", layout=(), soft_shares=(50, 50))
    cluster = MigCluster([host], policy=POLICY)
    workdir = str(cluster.root)
    try:
        view = cluster.wait_for_workers(count=2, timeout_s=120)
        (shown,) = view.hosts
        assert [(d.percent, d.isolation) for d in shown.soft] == [(50, "soft"), (50, "soft")]
        assert all(d.worker_view is not None and d.worker_view.pid for d in shown.soft)
        with cluster.client() as client:
            seen = client.run(mps_environment)
            info = client.scheduler_info()["workers"].values()
            name = client.submit(mps_environment, resources=soft(50), pure=False).result(60)
        assert len(seen) == 2
        half = L40S_MIB * 50 // 100
        for env in seen.values():
            assert env["CUDA_VISIBLE_DEVICES"].startswith("GPU-")
            assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
            assert env["limit"] == f"0={half}M"
            assert env["pipe"].startswith(workdir)
        assert {w["memory_limit"] for w in info} == {half * 1024 * 1024}
        assert {w["resources"]["soft-share"] for w in info} == {50.0}
        assert name["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
        assert cluster.status().controller.reshapes_done == 0
        victim = shown.soft[0].worker_view
        assert victim is not None and victim.pid is not None
        kill_group(victim.pid)  # the agent reports it and starts the share's worker again
        back = waited(
            cluster,
            lambda v: (
                kinds(v).count("soft-worker-started") >= 3
                and "worker-died" in kinds(v)
                and sum(
                    1
                    for d in v.hosts[0].soft
                    if d.worker_view and d.worker_view.status == "running"
                )
                == 2
            ),
            seconds=120,
        )
        assert back.hosts[0].soft[0].worker_view is not None
        assert {d.worker for d in back.hosts[0].soft} == {d.worker for d in shown.soft}
    finally:
        cluster.close()
    assert wait_gone(workdir) == []
