"""Dask workers on MIG devices: the ``migctl run ... -- dask worker`` line and its lifetime.

Why this exists: each MIG device gets exactly one Dask worker, one thread, the device's
resources and a memory limit from the instance (``fleet.resources``). A real worker runs
as ``migctl run --device MIG-<uuid> --job NAME -- dask worker SCHED --nthreads 1
--no-nanny --resources ... --memory-limit BYTES --name NAME``, so it holds the device's lease and
sees ``CUDA_VISIBLE_DEVICES=MIG-<uuid>``; it starts in its own process group, and
stopping it signals the whole group (SIGTERM, then SIGKILL after a grace period): stopping
the ``migctl run`` parent alone would leave the worker orphaned on the device. No nanny:
a worker that dies is not restarted behind the controller's back, and its lease ends.

``InProcessWorker`` runs the same worker inside this process (tests, simulated fleets);
its host takes the device's lease for it. A soft worker (``soft_worker_command``) is the same
worker on an MPS share of a GPU without MIG: ``migctl run --share P% --parent GPU-<uuid>
--memory M``, its memory limit the share's pinned limit. Imported by ``fleet.launch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from migctl.fleet.resources import (
    MIB_BYTES,
    resources_text,
    soft_worker_resources,
    worker_memory_limit,
    worker_resources,
)
from migctl.model import GiProfile

POLL_S = 0.05


def worker_command(
    scheduler: str,
    uuid: str,
    profile: GiProfile,
    name: str,
    *,
    migctl: Sequence[str] = ("migctl",),
    dask: Sequence[str] = ("dask", "worker"),
) -> list[str]:
    """The argv that starts one worker on MIG device ``uuid`` under ``migctl run``."""
    lease = ["--device", uuid]
    offer = worker_resources(profile), worker_memory_limit(profile)
    return _under_run(lease, scheduler, offer, name, migctl=migctl, dask=dask)


def soft_worker_command(
    scheduler: str,
    share: SoftWorkerShare,
    name: str,
    *,
    migctl: Sequence[str] = ("migctl",),
    dask: Sequence[str] = ("dask", "worker"),
) -> list[str]:
    """The argv that starts one worker on a soft device: ``migctl run --share P% --parent GPU
    --memory M`` (the share's pinned limit, also the worker's memory limit)."""
    lease = ["--share", f"{share.percent}%", "--parent", share.parent_uuid]
    lease += ["--memory", f"{share.memory_mib}MiB"]
    offer = share.resources(), share.memory_limit()
    return _under_run(lease, scheduler, offer, name, migctl=migctl, dask=dask)


def _under_run(
    lease: list[str],
    scheduler: str,
    offer: tuple[dict[str, float], int],
    name: str,
    *,
    migctl: Sequence[str],
    dask: Sequence[str],
) -> list[str]:
    resources, memory_limit = offer
    return [
        *migctl,
        "run",
        *lease,
        "--job",
        name,
        "--quiet",
        "--",
        *dask,
        scheduler,
        "--nthreads",
        "1",
        "--no-nanny",
        "--resources",
        resources_text(resources),
        "--memory-limit",
        str(memory_limit),
        "--name",
        name,
    ]


@dataclass(frozen=True, slots=True)
class SoftWorkerShare:
    """One soft share a host's agent keeps a worker on: the parent GPU, the share and its
    pinned memory limit in MiB."""

    gpu: int
    parent_uuid: str
    percent: int
    memory_mib: int

    def resources(self) -> dict[str, float]:
        return soft_worker_resources(self.percent, self.memory_mib)

    def memory_limit(self) -> int:
        """The worker's memory limit in bytes: the share's limit, never the whole GPU's."""
        return self.memory_mib * MIB_BYTES


class WorkerHandle(Protocol):
    async def stop(self, grace_s: float) -> None: ...

    def exited(self) -> bool: ...


@dataclass
class WorkerProcess:
    """A worker command in its own process group."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, argv: Sequence[str], env: Mapping[str, str], log_path: str) -> WorkerProcess:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session and process group
            )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.poll() is not None

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to the group, SIGKILL to it after ``grace_s``; then reap the leader."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        self._signal(signal.SIGKILL)  # also ends children the leader left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.process.wait, max(grace_s, 1.0))

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


@dataclass
class InProcessWorker:
    """A ``distributed.Worker`` inside this process, set up as the command line would."""

    worker: Any

    @classmethod
    async def start(
        cls, scheduler: str, offer: tuple[dict[str, float], int], name: str
    ) -> InProcessWorker:
        """A worker offering ``offer``: (resources, memory limit in bytes)."""
        import dask
        from distributed import Worker

        # pynvml's library is process-wide and here it is migctl's (maybe the simulator):
        # distributed's own GPU monitoring must not call it.
        dask.config.set({"distributed.diagnostics.nvml": False})

        worker = await Worker(
            scheduler,
            nthreads=1,
            resources=offer[0],
            memory_limit=offer[1],
            name=name,
            dashboard=False,
            host="127.0.0.1",
        )
        return cls(worker)

    async def stop(self, grace_s: float) -> None:
        await asyncio.wait_for(self.worker.close(), timeout=max(grace_s, 1.0) + 5.0)

    def exited(self) -> bool:
        return False


@dataclass
class AdoptedGroup:
    """A worker started by an earlier agent of this host (it died; the worker lived on): its
    process group, known from the lease's holder. Not our child: watched by its pid."""

    pgid: int
    pid: int  # the lease's holder (the dask worker)

    def exited(self) -> bool:
        return not process_exists(self.pid)

    async def stop(self, grace_s: float) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while process_exists(self.pid) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)


def process_exists(pid: int) -> bool:
    """Is there a process ``pid`` (ours to signal or not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def python_module_argv(module: str) -> list[str]:
    """``[python, -m, module]`` with this interpreter (for launching without PATH entries)."""
    return [sys.executable, "-m", module]
