"""Helpers for the fleet tests that start real processes (``MigCluster``): tasks that leave a
trace on disk, the CLI against a cluster, and proof that no process is left.

Imported by tests/fleet/ only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from migctl.fleet.cluster import MigCluster
from migctl.schemas.fleet import FleetStatusOut

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC.parent


def traced(directory: str, label: str, seconds: float = 0.0) -> str:
    """A task that appends ``label worker`` to ``directory/ran`` (every execution counts) and
    returns the worker's name."""
    from distributed import get_worker

    name = str(get_worker().name)
    time.sleep(seconds)
    with open(os.path.join(directory, "ran"), "a") as out:
        out.write(f"{label} {name}\n")
    return name


def then(directory: str, label: str, before: str) -> str:
    """A task that depends on another's result."""
    return traced(directory, label) + "<-" + before


def executions(directory: Path) -> list[str]:
    path = directory / "ran"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def migctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process (no MIGCTL_* from this one)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SRC), *inherited])  # deps found too
    return subprocess.run(
        [sys.executable, "-m", "migctl", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def status_json(cluster: MigCluster) -> dict[str, Any]:
    done = migctl("-o", "json", "fleet", "status", "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def waited(
    cluster: MigCluster, ready: Callable[[FleetStatusOut], bool], seconds: float = 90
) -> FleetStatusOut:
    return cluster.wait(ready, time.monotonic() + seconds, check=False)


def busy_slices(view: FleetStatusOut) -> list[tuple[str | None, int]]:
    """(MIG device, first memory slice) of every busy slice of the fleet."""
    return [
        (s.uuid, s.placement.start) for h in view.hosts for g in h.gpus for s in g.slices if s.busy
    ]


def kinds(view: FleetStatusOut) -> list[str]:
    return [str(d.get("kind")) for d in view.decisions]


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment mentions ``text`` (the cluster's work
    directory: every process it started, and theirs, has it in MIGCTL_SIM_DIR or argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in blob and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(text: str, seconds: float = 30) -> list[int]:
    left = processes_mentioning(text)
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_mentioning(text)
    return left


def kill_group(pid: int) -> None:
    """SIGKILL a worker's whole process group (``migctl run`` and its ``dask worker``)."""
    import signal

    os.killpg(pid, signal.SIGKILL)
