"""Integration: a real fleet (``MigCluster``): scheduler with the controller, an agent process per
simulated host, ``dask worker`` processes under ``migctl run``.

* a task waiting for a 3g.40gb gets idle slices reshaped around a busy one, on another host's
  identity than its neighbours' (UUIDs differ), and the busy slice keeps its UUID;
* a drain on a GPU where a task runs leaves that task alone: it runs once, on the same worker;
* ``migctl fleet status -o json`` and ``migctl fleet metrics`` read the controller;
* ``close()`` leaves no process (none mentions the cluster's work directory).
"""

from __future__ import annotations

import time
from pathlib import Path

import cloudpickle
import pytest

from migctl.dask import mig
from migctl.fleet.cluster import MigCluster
from migctl.fleet.policy import Policy
from migctl.fleet.simhosts import SimHost
from migctl.schemas.fleet import FleetStatusOut
from tests.fleet import procs
from tests.fleet.procs import executions, kinds, migctl, status_json, traced, wait_gone, waited

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
cloudpickle.register_pickle_by_value(procs)
POLICY = Policy(cycle_s=0.5, drain_deadline_s=60, pending_deadline_s=60, stop_grace_s=5)


def slices(view: FleetStatusOut, host: str) -> list[tuple[str, int, bool, str | None]]:
    found = next(h for h in view.hosts if h.name == host)
    return sorted(
        (s.profile, s.placement.start, s.busy, s.uuid) for g in found.gpus for s in g.slices
    )


def test_a_fleet_reshapes_around_a_busy_slice_reports_and_leaves_nothing(tmp_path: Path) -> None:
    hosts = [
        SimHost("int-a", layout=("1g.10gb",) * 4 + ("3g.40gb",), held=(4,)),
        SimHost("int-b", layout=("4g.40gb", "3g.40gb"), held=(0, 1)),  # no idle room at all
    ]
    cluster = MigCluster(hosts, policy=POLICY)
    workdir = str(cluster.root)
    try:
        before = cluster.wait_for_workers(timeout_s=120)
        busy = [s for s in slices(before, "int-a") if s[2]]
        assert len(busy) == 1 and busy[0][0] == "3g.40gb"
        uuids = {s[3] for h in ("int-a", "int-b") for s in slices(before, h)}
        assert len(uuids) == 7  # every device its own UUID: the hosts are distinct machines
        with cluster.client() as client:
            future = client.submit(
                traced, str(tmp_path), "big", resources=mig("3g.40gb"), pure=False
            )
            name = future.result(timeout=120)
        assert name.startswith("int-a:")  # int-b is all busy
        after = waited(cluster, lambda v: v.controller.reshapes_done >= 1 and not v.reshapes)
        assert busy[0] in slices(after, "int-a")  # same profile, placement, busy, UUID
        assert executions(tmp_path) == ["big"]
        report = status_json(cluster)
        assert report["kind"] == "FleetStatus" and [h["name"] for h in report["hosts"]] == [
            "int-a",
            "int-b",
        ]
        metrics = migctl("fleet", "metrics", "--scheduler", cluster.scheduler_address)
        assert metrics.returncode == 0, metrics.stderr
        assert 'migctl_fleet_host_up{host="int-b"} 1.0' in metrics.stdout
        assert (
            'migctl_fleet_slices{host="int-a",profile="3g.40gb",state="busy"} 1.0' in metrics.stdout
        )
    finally:
        cluster.close()
    assert wait_gone(workdir) == []


def test_a_drain_beside_a_running_task_leaves_it_alone(tmp_path: Path) -> None:
    """GPU of 4g.40gb + 3g.40gb: a long task runs on the 3g worker when a 2g task arrives; the
    idle 4g is drained and reshaped, the running task runs once, on its worker, to the end."""
    cluster = MigCluster([SimHost("drain-a", layout=("4g.40gb", "3g.40gb"))], policy=POLICY)
    try:
        cluster.wait_for_workers(2, timeout_s=120)
        with cluster.client() as client:
            slow = client.submit(
                traced, str(tmp_path), "slow", 6.0, resources=mig("3g.40gb"), pure=False
            )
            for _ in range(600):  # until the scheduler has it on the 3g worker
                if any(slow.key in keys for keys in client.processing().values()):
                    break
                time.sleep(0.1)
            two = client.submit(traced, str(tmp_path), "two", resources=mig("2g.20gb"), pure=False)
            assert two.result(timeout=120).startswith("drain-a:")
            ran_on = slow.result(timeout=120)
        view = waited(cluster, lambda v: not v.reshapes)
        assert "drained" in kinds(view) and view.controller.reshapes_done == 1
        assert sorted(executions(tmp_path)) == ["slow", "two"]
        three = [s for s in slices(view, "drain-a") if s[0] == "3g.40gb"]
        assert len(three) == 1 and ran_on == f"drain-a:{three[0][3]}"
        assert view.controller.tasks_rerun == 0 and view.controller.tasks_interrupted == 0
    finally:
        cluster.close()


def test_two_controllers_on_one_scheduler_the_second_is_refused() -> None:
    cluster = MigCluster([SimHost("two-a", layout=("7g.80gb",))], policy=POLICY)
    try:
        done = migctl("fleet", "controller", "--scheduler", cluster.scheduler_address, timeout=60)
        assert done.returncode == 6, done.stderr
        assert "already has a fleet controller" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        cluster.close()


def test_hosts_behind_their_daemons_reshape_and_a_killed_worker_releases_its_lease(
    tmp_path: Path,
) -> None:
    """Two hosts, each with its own `migctl serve` (own socket, state, lease database), agents
    driving them through RemoteNode: a waiting 3g task gets idle slices reshaped around a busy
    one; a worker killed with SIGKILL is reported and its lease is gone from its daemon."""
    hosts = [
        SimHost("dmn-a", layout=("1g.10gb",) * 4 + ("3g.40gb",), held=(4,)),
        SimHost("dmn-b", layout=("4g.40gb", "3g.40gb"), held=(0, 1)),
    ]
    with MigCluster(hosts, policy=POLICY, daemons=True) as cluster:
        cluster.wait_for_workers(timeout_s=120)
        with cluster.client() as client:
            future = client.submit(
                traced, str(tmp_path), "big", resources=mig("3g.40gb"), pure=False
            )
            assert future.result(timeout=120).startswith("dmn-a:")
        view = waited(cluster, lambda v: v.controller.reshapes_done >= 1 and not v.reshapes)
        worker = next(s.worker for h in view.hosts for g in h.gpus for s in g.slices if s.worker)
        assert worker.pid is not None
        procs.kill_group(worker.pid)
        after = waited(cluster, lambda v: "worker-died" in kinds(v))
        socket = cluster.root / f"{worker.name.split(':')[0]}.sock"
        for _ in range(60):  # until the killed worker has exited (SIGKILL is not instantaneous)
            listed = migctl("-o", "json", "lease", "list", env={"MIGCTL_URL": f"unix://{socket}"})
            assert listed.returncode == 0, listed.stderr
            if worker.name not in listed.stdout:
                break
            time.sleep(0.5)
        assert worker.name not in listed.stdout
        assert after.controller.tasks_rerun == 0


def test_a_daemon_host_starts_from_its_own_layout_not_an_earlier_fleets(tmp_path: Path) -> None:
    """Each daemon keeps its state (``service.db``: the desired layout it re-applies when it
    starts) in the cluster's work directory: a second fleet with a host of the same name starts
    in the layout its ``SimHost`` gives, not in the one the first fleet reshaped that host to."""
    spec = [SimHost("again-a", layout=("4g.40gb", "3g.40gb"))]
    with MigCluster(spec, policy=POLICY, daemons=True) as first:
        first.wait_for_workers(2, timeout_s=120)
        with first.client() as client:
            whole = client.submit(traced, str(tmp_path), "whole", resources=mig("7g.80gb"))
            assert whole.result(timeout=120).startswith("again-a:")
        assert [s[0] for s in slices(first.status(), "again-a")] == ["7g.80gb"]
    with MigCluster(spec, policy=POLICY, daemons=True) as second:
        view = second.wait_for_workers(timeout_s=120)
        assert [s[0] for s in slices(view, "again-a")] == ["3g.40gb", "4g.40gb"]
