"""Reshape latency on a real (simulated-GPU) fleet, and what a worker costs on its host.

Why this exists: a task that asks for a MIG size no worker offers waits while the controller
notices it (next cycle), plans, drains the idle workers in the way (two phases), the host
reshapes the GPU (NVML through the Node API), and a new ``migctl run ... dask worker`` starts
and takes the task. Each part is measured on a ``MigCluster`` (real scheduler, agent and
worker processes; the simulated NVML) from the controller's own decisions (``plan``,
``drain``, ``nvml`` in each ``reshaped`` decision) and the task's own start time:

* wait for a cycle: from submission to the plan's start;
* plan, drain, NVML: as the controller timed them;
* worker start: from the reshape's end to the task running on the new worker (process start,
  ``migctl run`` leasing the device, the worker registering, the task dispatched).

Trials alternate a task asking for 7g.80gb and one asking for 4g.40gb on a host of one H100,
so every trial needs a reshape. Then, per host, the fleet's standing cost: how long its workers
take to come up, and their resident memory (``migctl run`` and ``dask worker`` together, summed
over each worker's process group from /proc). Imported by ``bench.fleet_bench``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from migctl.dask import mig
from migctl.fleet.cluster import MigCluster
from migctl.fleet.policy import Policy
from migctl.fleet.simhosts import SimHost

POLICY = Policy(cycle_s=0.5, drain_deadline_s=60, pending_deadline_s=60, stop_grace_s=5)


@dataclass(frozen=True, slots=True)
class Trial:
    profile: str
    cycle_wait_s: float
    plan_s: float
    drain_s: float
    nvml_s: float
    worker_start_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class HostCost:
    host: str
    layout: str
    workers: int
    up_s: float  # from the agent's start to every worker running
    rss_mib_per_worker: float
    rss_mib_total: float


def started_at() -> float:
    """A task: when it started, on the worker's clock (the same machine)."""
    return time.time()


def trials(count: int) -> list[Trial]:
    found = []
    with MigCluster([SimHost("lat-a", layout=("4g.40gb", "3g.40gb"))], policy=POLICY) as cluster:
        cluster.wait_for_workers(2)
        with cluster.client() as client:
            for k in range(count):
                profile = ("7g.80gb", "4g.40gb")[k % 2]
                done = len(cluster.status().decisions)
                submitted = time.time()
                begun = client.submit(started_at, resources=mig(profile), pure=False).result(
                    timeout=300
                )
                view = cluster.wait(
                    lambda v, n=done: _reshaped(v.decisions[n:]) is not None and not v.reshapes,
                    time.monotonic() + 60,
                )
                found.append(_trial(profile, submitted, begun, view.decisions[done:]))
    return found


def _reshaped(decisions: list[dict[str, object]]) -> dict[str, object] | None:
    return next((d for d in decisions if d.get("kind") == "reshaped"), None)


def _trial(
    profile: str, submitted: float, begun: float, decisions: list[dict[str, object]]
) -> Trial:
    planned = next(d for d in decisions if d.get("kind") == "reshape-planned")
    reshaped = _reshaped(decisions)
    assert reshaped is not None
    plan = float(reshaped.get("plan", 0.0))  # type: ignore[arg-type]
    drain = float(reshaped.get("drain", 0.0))  # type: ignore[arg-type]
    nvml = float(reshaped.get("nvml", 0.0))  # type: ignore[arg-type]
    return Trial(
        profile,
        float(planned["at"]) - plan - submitted,  # type: ignore[arg-type]
        plan,
        drain,
        nvml,
        begun - float(reshaped["at"]),  # type: ignore[arg-type]
        begun - submitted,
    )


def host_costs() -> list[HostCost]:
    specs = [
        SimHost("cost-7x1g", layout=("1g.10gb",) * 7),
        SimHost("cost-4g3g", layout=("4g.40gb", "3g.40gb")),
    ]
    started = time.monotonic()
    with MigCluster(specs, policy=POLICY) as cluster:
        up: dict[str, float] = {}
        while len(up) < len(specs):
            view = cluster.status()
            for host in view.hosts:
                slices = [s for g in host.gpus for s in g.slices]
                if (
                    host.name not in up
                    and slices
                    and all(s.worker and s.worker.status == "running" for s in slices)
                ):
                    up[host.name] = time.monotonic() - started
            time.sleep(0.1)
        rows = []
        order = [s.name for s in specs]
        for spec, host in zip(
            specs, sorted(view.hosts, key=lambda h: order.index(h.name)), strict=True
        ):
            pids = [s.worker.pid for g in host.gpus for s in g.slices if s.worker and s.worker.pid]
            rss = [_group_rss_mib(pid) for pid in pids]
            rows.append(
                HostCost(
                    spec.name,
                    "+".join(spec.layout),
                    len(pids),
                    up[spec.name],
                    statistics.mean(rss),
                    sum(rss),
                )
            )
    return rows


def _group_rss_mib(pgid: int) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            status = (entry / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024
