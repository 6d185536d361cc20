"""How a host starts its workers: a ``migctl run`` process pointed at the host, or in-process.

Why this exists: a worker must lease its device from the host's own lease store, so the
``migctl run`` that starts it must reach the same machine as the host's ``Node``: the daemon's
socket (``MIGCTL_URL``) for a ``RemoteNode``; the simulated machine, its directory and files
(``MIGCTL_SIM``, ``MIGCTL_SIM_DIR``, ``MIGCTL_LEASE_DB``, ``MIGCTL_STATE_DIR``, ``MIGCTL_LOCAL``)
for a ``LocalNode``. ``node_environment`` says which variables; every other ``MIGCTL_*``
variable of this process is dropped so none can point the worker elsewhere.

``SubprocessLauncher`` starts ``migctl run --device MIG-<uuid> --job NAME --quiet -- dask worker
...`` (or ``migctl run --share P% --parent GPU-<uuid> ...`` for a soft worker) in its own
process group; ``InProcessLauncher`` runs a ``distributed.Worker`` in this
process after leasing the device through the node (tests, simulated fleets in one process).
Imported by ``fleet.node_host``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.fleet.resources import worker_memory_limit, worker_resources
from migctl.fleet.workers import (
    InProcessWorker,
    SoftWorkerShare,
    WorkerHandle,
    WorkerProcess,
    soft_worker_command,
    worker_command,
)
from migctl.model import GiProfile

if TYPE_CHECKING:
    from migctl.node.protocol import Node

MIGCTL_VARIABLES = ("MIGCTL_",)


def node_environment(node: Node) -> dict[str, str]:
    """The ``MIGCTL_*`` variables that make ``migctl run`` reach the same machine as ``node``."""
    from migctl.node.local import LocalNode
    from migctl.node.remote import RemoteNode

    if isinstance(node, RemoteNode):
        where = node.client.where
        url = "unix://" + where[len("unix:") :] if where.startswith("unix:") else where
        return {"MIGCTL_URL": url}
    if isinstance(node, LocalNode):
        settings = node.settings
        env = {
            "MIGCTL_LOCAL": "1",
            "MIGCTL_LEASE_DB": str(settings.lease_db),
            "MIGCTL_STATE_DIR": str(settings.state_dir),
            "MIGCTL_SIM_DIR": str(settings.sim_dir),
        }
        if settings.sim is not None:
            env["MIGCTL_SIM"] = settings.sim
        return env
    return {}


def worker_environment(base: Mapping[str, str], node_env: Mapping[str, str]) -> dict[str, str]:
    """``base`` without its ``MIGCTL_*`` variables (the token kept), plus ``node_env``."""
    env = {k: v for k, v in base.items() if not k.startswith(MIGCTL_VARIABLES)}
    if "MIGCTL_URL" in node_env and base.get("MIGCTL_TOKEN"):
        env["MIGCTL_TOKEN"] = base["MIGCTL_TOKEN"]
    env.update(node_env)
    return env


@dataclass
class Started:
    handle: WorkerHandle
    pid: int | None
    lease: int | None = None  # the lease id an in-process worker holds through the node


@dataclass
class SubprocessLauncher:
    """Real workers: ``migctl run ... -- dask worker ...`` in their own process groups."""

    migctl: Sequence[str] = ("migctl",)
    dask: Sequence[str] = ("dask", "worker")
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    async def start(
        self, node: Node, scheduler: str, uuid: str, profile: GiProfile, name: str
    ) -> Started:
        argv = worker_command(scheduler, uuid, profile, name, migctl=self.migctl, dask=self.dask)
        return self._spawn(node, argv, name)

    async def start_soft(
        self, node: Node, scheduler: str, share: SoftWorkerShare, name: str
    ) -> Started:
        argv = soft_worker_command(scheduler, share, name, migctl=self.migctl, dask=self.dask)
        return self._spawn(node, argv, name)

    def _spawn(self, node: Node, argv: list[str], name: str) -> Started:
        env = worker_environment(self.base_env, node_environment(node))
        log_path = self.log_dir / f"migctl-worker-{_safe(name)}.log"
        process = WorkerProcess.start(argv, env, str(log_path))
        return Started(process, process.pid)


@dataclass
class InProcessLauncher:
    """Workers inside this process; the device is leased through the node for them."""

    async def start(
        self, node: Node, scheduler: str, uuid: str, profile: GiProfile, name: str
    ) -> Started:
        offer = worker_resources(profile), worker_memory_limit(profile)
        return Started(await InProcessWorker.start(scheduler, offer, name), None)

    async def start_soft(
        self, node: Node, scheduler: str, share: SoftWorkerShare, name: str
    ) -> Started:
        offer = share.resources(), share.memory_limit()
        return Started(await InProcessWorker.start(scheduler, offer, name), None)


Launcher = SubprocessLauncher | InProcessLauncher


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
