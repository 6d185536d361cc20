"""Chaos on a real fleet (``MigCluster``): processes killed on purpose, NVML failing.

* the process that applies a host's reshape (its agent, which owns the simulated machine) is
  killed mid-reshape by an injected ``KILL`` fault: restarted, it repairs the apply from its
  journal; the controller, whose order went unanswered, gives up at the order's deadline, reads
  the inventory again and does not act twice; the task still runs, once;
* the scheduler is killed and restarted on its address: the agents come back, workers that
  died with it are reported, their leases are gone from the hosts' lease stores, the new
  controller rebuilds the fleet from the agents' reports and reshapes for new demand;
* the worker being drained dies between the two drain phases: no task is lost, and the tasks
  Dask ran again are counted and reported;
* an injected NVML error makes a reshape fail cleanly (rolled back, busy slice untouched) and
  the controller retries it within its budget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cloudpickle
import pytest

from migctl.dask import mig
from migctl.fleet.cluster import MigCluster
from migctl.fleet.policy import Policy
from migctl.fleet.simhosts import SimHost
from tests.fleet import procs
from tests.fleet.procs import (
    busy_slices,
    executions,
    kinds,
    migctl,
    then,
    traced,
    wait_gone,
    waited,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]
cloudpickle.register_pickle_by_value(procs)
POLICY = Policy(
    cycle_s=0.5,
    drain_deadline_s=60,
    pending_deadline_s=15,
    stop_grace_s=3,
    retry_backoff_s=1,
    restart_backoff_s=1,
)


def sim(cluster: MigCluster, host: str, *args: str) -> None:
    machine = cluster.root / "sim" / f"{host}.yaml"
    done = migctl(
        "--sim", str(machine), "sim", *args, env={"MIGCTL_SIM_DIR": str(cluster.root / "sim")}
    )
    assert done.returncode == 0, done.stderr


def leases(cluster: MigCluster, host: str) -> list[str]:
    machine = cluster.root / "sim" / f"{host}.yaml"
    env = {"MIGCTL_SIM_DIR": str(cluster.root / "sim")}
    done = migctl("--sim", str(machine), "-o", "json", "lease", "list", env=env)
    assert done.returncode == 0, done.stderr
    return sorted(item["uuid"] for item in json.loads(done.stdout)["leases"])


@pytest.mark.parametrize("owner", ["agent", "daemon"])
def test_a_host_killed_mid_reshape_is_repaired_and_not_reshaped_twice(
    owner: str, tmp_path: Path
) -> None:
    """``owner``: the process that applies the host's reshapes and is killed: the agent of a
    simulated host (it owns the machine), or the host's daemon (the agent drives it)."""
    hosts = [SimHost("kill-a", layout=("4g.40gb", "3g.40gb"))]
    cluster = MigCluster(hosts, policy=POLICY, daemons=owner == "daemon")
    victim = f"{owner}-kill-a"
    try:
        cluster.wait_for_workers(2, timeout_s=120)
        sim(cluster, "kill-a", "fault", "add", "nvmlDeviceCreateGpuInstance", "KILL")
        with cluster.client() as client:
            whole = client.submit(
                traced, str(tmp_path), "whole", resources=mig("7g.80gb"), pure=False
            )
            for _ in range(600):
                if victim in cluster.exited():
                    break
                time.sleep(0.1)
            assert cluster.exited() == [victim]  # the fault killed it mid-apply
            cluster.restart(victim)  # it repairs the apply from its journal as it starts
            assert whole.result(timeout=120).startswith("kill-a:")
        repaired = "node-recovered" if owner == "agent" else "node-back"
        view = waited(cluster, lambda v: repaired in kinds(v) and not v.reshapes)
        assert executions(tmp_path) == ["whole"]
        planned = [d for d in view.decisions if d.get("kind") == "reshape-planned"]
        assert len(planned) <= 2, planned  # the lost order, and at most one retry
        slices = [s.profile for h in view.hosts for g in h.gpus for s in g.slices]
        assert slices == ["7g.80gb"]
    finally:
        cluster.close()


def test_a_scheduler_restart_is_rebuilt_from_the_agents(tmp_path: Path) -> None:
    hosts = [
        SimHost("boot-a", layout=("4g.40gb", "3g.40gb")),
        SimHost("boot-b", layout=("7g.80gb",)),
    ]
    cluster = MigCluster(hosts, policy=POLICY)
    try:
        before = cluster.wait_for_workers(3, timeout_s=120)
        old = {s.worker.name for h in before.hosts for g in h.gpus for s in g.slices if s.worker}
        cluster.kill("scheduler")
        cluster.restart("scheduler")
        after = waited(
            cluster,
            lambda v: (
                "worker-died" in kinds(v)
                and sum(
                    1
                    for h in v.hosts
                    for g in h.gpus
                    for s in g.slices
                    if s.worker and s.worker.status == "running"
                )
                == 3
            ),
        )
        assert [h.name for h in after.hosts] == ["boot-a", "boot-b"]
        died = {d["worker"] for d in after.decisions if d.get("kind") == "worker-died"}
        assert died == old  # every worker died with the scheduler and was reported
        for host in ("boot-a", "boot-b"):
            running = sorted(
                str(s.uuid) for h in after.hosts if h.name == host for g in h.gpus for s in g.slices
            )
            assert leases(cluster, host) == running  # one lease per new worker, none stale
        with cluster.client() as client:
            two = client.submit(traced, str(tmp_path), "two", resources=mig("2g.20gb"), pure=False)
            assert two.result(timeout=120)
        assert executions(tmp_path) == ["two"]
    finally:
        cluster.close()


def test_a_worker_dying_mid_drain_loses_no_task_and_reruns_are_counted(tmp_path: Path) -> None:
    policy = Policy(cycle_s=2, drain_deadline_s=60, pending_deadline_s=60, stop_grace_s=3)
    hosts = [
        SimHost("drain-c", layout=("4g.40gb", "3g.40gb")),
        SimHost("drain-d", layout=("1g.10gb", "3g.40gb"), held=(1,)),  # no room for a 7g
    ]
    cluster = MigCluster(hosts, policy=policy)
    try:
        view = cluster.wait_for_workers(3, timeout_s=120)
        three = next(
            s.worker
            for h in view.hosts
            for g in h.gpus
            for s in g.slices
            if s.profile == "3g.40gb" and s.worker
        )
        with cluster.client() as client:
            address = next(
                a for a, w in client.scheduler_info()["workers"].items() if w["name"] == three.name
            )
            first = client.submit(traced, str(tmp_path), "first", workers=[address], pure=False)
            first.result(timeout=60)  # its result stays on the 3g worker
            after = client.submit(
                then, str(tmp_path), "after", first, resources=mig("7g.80gb"), pure=False
            )
            draining = waited(
                cluster, lambda v: any(three.name in r.draining for r in v.reshapes), 60
            )
            assert draining.reshapes[0].phase == "draining"
            pid = next(
                s.worker.pid
                for h in draining.hosts
                for g in h.gpus
                for s in g.slices
                if s.worker and s.worker.name == three.name
            )
            assert pid is not None
            procs.kill_group(pid)
            assert "<-" in after.result(timeout=120)
        done = waited(cluster, lambda v: v.controller.reshapes_done >= 1 and not v.reshapes)
        ran = executions(tmp_path)
        assert ran.count("after") == 1
        assert ran.count("first") == 1 + done.controller.tasks_rerun  # re-runs, counted
        assert done.controller.tasks_interrupted == 0  # nothing was running on it
    finally:
        cluster.close()


def test_an_nvml_fault_fails_a_reshape_cleanly_and_it_is_retried(tmp_path: Path) -> None:
    hosts = [
        SimHost(
            "fault-a", layout=("1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "3g.40gb"), held=(4,)
        )
    ]
    cluster = MigCluster(hosts, policy=POLICY)
    workdir = str(cluster.root)
    try:
        before = cluster.wait_for_workers(4, timeout_s=120)
        busy = busy_slices(before)
        sim(
            cluster,
            "fault-a",
            "fault",
            "add",
            "nvmlDeviceCreateGpuInstance",
            "INSUFFICIENT_RESOURCES",
        )
        with cluster.client() as client:
            four = client.submit(
                traced, str(tmp_path), "four", resources=mig("4g.40gb"), pure=False
            )
            assert four.result(timeout=120)
        view = waited(cluster, lambda v: v.controller.reshapes_done >= 1 and not v.reshapes)
        order = [k for k in kinds(view) if k in ("reshape-failed", "reshaped")]
        assert order == ["reshape-failed", "reshaped"]
        failed = next(d for d in view.decisions if d.get("kind") == "reshape-failed")
        assert "cannot create 4g.40gb" in str(failed["error"])  # the injected driver error
        after = busy_slices(view)
        assert after == busy  # the busy slice was never touched
        assert executions(tmp_path) == ["four"]
    finally:
        cluster.close()
    assert wait_gone(workdir) == []
