"""``migctl fleet demo``: a simulated fleet where Dask tasks get MIG sizes by reshaping idle slices.

Why this exists: the quickest way to see what the fleet does is to watch it. The demo brings up
a ``MigCluster`` of simulated H100 hosts in different layouts (some slices held by a live
process: busy, never touched), submits Dask tasks that ask for MIG sizes no idle worker offers
(``mig("1g.10gb")``, ``mig("7g.80gb")``, ``gpu(mem="20GiB")``...), and prints what happened:
where each task ran and how long it waited, the controller's decisions (drains, reshapes,
workers started), and the fleet before and after. Then everything is stopped and the demo
checks that no process it started is left. Imported by the CLI.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from migctl.errors import InvalidStateError
from migctl.fleet.cluster import MigCluster
from migctl.fleet.policy import Policy
from migctl.fleet.resources import GPU_MEM_GIB, MIG_DEVICE, profile_resource, resources_text
from migctl.fleet.simhosts import SimHost
from migctl.fleet.workers import process_exists
from migctl.schemas.fleet import FleetStatusOut

LAYOUTS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"), (3,)),
    (("4g.40gb", "3g.40gb"), ()),
    (("2g.20gb", "2g.20gb", "3g.40gb"), ()),
    (("2g.20gb", "2g.20gb", "3g.40gb"), (0,)),
)
TIMEOUT_S = 240.0
Say = Callable[[str], Any]


def work(label: str, seconds: float) -> tuple[str, str, str]:
    """A task: hold the device a while; say where it ran and what CUDA would see."""
    from distributed import get_worker

    time.sleep(seconds)
    return label, str(get_worker().name), os.environ.get("CUDA_VISIBLE_DEVICES", "")


def mig(profile: str) -> dict[str, float]:
    return {profile_resource(profile): 1.0}  # what migctl.dask.mig(profile) gives


def tasks() -> list[tuple[str, dict[str, float], float]]:
    gpu_20gib = {GPU_MEM_GIB: 20.0, MIG_DEVICE: 1.0}  # migctl.dask.gpu(mem="20GiB")
    return [
        ("train-a", mig("3g.40gb"), 2.0),
        ("train-b", mig("3g.40gb"), 2.0),
        ("whole-gpu", mig("7g.80gb"), 1.0),
        ("embed-1", mig("1g.10gb"), 1.0),
        ("embed-2", mig("1g.10gb"), 1.0),
        ("embed-3", mig("1g.10gb"), 1.0),
        ("infer-20GiB", gpu_20gib, 1.0),
    ]


def hosts(count: int) -> list[SimHost]:
    return [
        SimHost(f"host-{i}", layout=LAYOUTS[i % len(LAYOUTS)][0], held=LAYOUTS[i % len(LAYOUTS)][1])
        for i in range(count)
    ]


def show_fleet(view: FleetStatusOut, say: Say) -> None:
    for host in view.hosts:
        cells = []
        for gpu in host.gpus:
            for item in gpu.slices:
                mark = "busy" if item.busy else "worker" if item.worker else "idle"
                cells.append(f"{item.profile}@{item.placement.start} ({mark})")
        say(f"  {host.name}: " + ", ".join(cells))


def run_demo(count: int, say: Say) -> None:
    """The demo (see the module docstring); raises if a task did not finish in time."""
    policy = Policy(cycle_s=0.5, drain_deadline_s=30, pending_deadline_s=60, stop_grace_s=5)
    say(f"Starting a simulated fleet: {count} hosts (an H100 each, own machine and files), a Dask")
    say("scheduler with the fleet controller, a node agent per host, a worker per idle MIG slice.")
    started = time.monotonic()
    cluster = MigCluster(hosts(count), policy=policy)
    pids: list[int] = []
    try:
        view = cluster.wait_for_workers(timeout_s=TIMEOUT_S)
        say(f"Fleet up in {time.monotonic() - started:.1f} s:")
        show_fleet(view, say)
        pids = [c.process.pid for c in cluster.children]
        _run_tasks(cluster, say)
        view = cluster.wait(lambda v: not v.reshapes, time.monotonic() + 60)
        _decisions(view, say)
        say("The fleet now:")
        show_fleet(view, say)
        pids += [
            s.worker.pid
            for h in view.hosts
            for g in h.gpus
            for s in g.slices
            if s.worker and s.worker.pid
        ]
    finally:
        cluster.close()
    left = [pid for pid in pids if process_exists(pid)]
    if left:
        raise InvalidStateError(f"processes left behind: {left}")
    say(f"Closed: {len(pids)} processes stopped, none left behind.")


def _run_tasks(cluster: MigCluster, say: Say) -> None:
    planned = tasks()
    say("Submitting tasks that ask for MIG sizes:")
    for label, resources, _ in planned:
        say(f"  {label}: resources={{{resources_text(resources)}}}")
    from distributed import as_completed

    with cluster.client() as client:
        submitted = time.monotonic()
        futures = [
            client.submit(work, label, seconds, resources=resources, pure=False)
            for label, resources, seconds in planned
        ]
        for future in as_completed(futures, timeout=TIMEOUT_S):
            label, worker, visible = future.result()
            waited = time.monotonic() - submitted
            say(f"  {label} done after {waited:.1f} s on {worker} (CUDA_VISIBLE_DEVICES={visible})")


def _decisions(view: FleetStatusOut, say: Say) -> None:
    counts = Counter(view.controller.counts)
    say(
        "The controller: {reshaped} GPU(s) reshaped, {drained} worker(s) drained first, "
        "{started} worker(s) started; busy slices destroyed: 0; tasks run twice: {rerun}.".format(
            reshaped=counts["reshaped"],
            drained=counts["drained"],
            started=counts["worker-started"],
            rerun=view.controller.tasks_rerun,
        )
    )
    for decision in view.decisions:
        if decision.get("kind") == "reshape-planned":
            say(
                f"  {decision['host']} GPU {decision['gpu']}: destroy {', '.join(decision['destroy'])}; "  # type: ignore[arg-type]
                f"create {', '.join(decision['create'])}"  # type: ignore[arg-type]
            )
