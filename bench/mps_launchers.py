"""How the MPS interference benchmark starts its clients: the cases and the launchers.

Why this exists: a benchmark client is started with MPS through raw environment variables and
a private daemon (:class:`EnvLauncher`), through ``migctl run --share`` (:class:`MigctlLauncher`:
a soft-device lease, with migctl's own MPS daemon), or without MPS (:class:`PlainLauncher`).
The cases (:class:`Case`, :class:`ClientSpec`) say who runs with which share and memory limit.
Imported by ``bench/mps_interference.py`` and its tests; pure values, no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ClientSpec:
    """One client of a case: its role and, under MPS, its share and pinned limit."""

    name: str
    role: str  # victim | gemm | copy
    share: int | None = None  # CUDA_MPS_ACTIVE_THREAD_PERCENTAGE; None: no MPS limit
    memory_mib: int | None = None  # CUDA_MPS_PINNED_DEVICE_MEM_LIMIT
    probe_gib: tuple[float, float] | None = None  # (must be refused, must fit)


@dataclass(frozen=True)
class Case:
    name: str
    mps: bool
    clients: tuple[ClientSpec, ...]
    note: str = ""


class Launcher(Protocol):
    """How a client process is started: its argv and the variables added to its env."""

    def launch(self, spec: ClientSpec, worker: list[str]) -> tuple[list[str], dict[str, str]]: ...


@dataclass(frozen=True)
class EnvLauncher:
    """MPS through raw environment variables (what a migctl soft-device lease sets)."""

    gpu_uuid: str
    pipe_dir: Path

    def launch(self, spec: ClientSpec, worker: list[str]) -> tuple[list[str], dict[str, str]]:
        env = {"CUDA_VISIBLE_DEVICES": self.gpu_uuid, "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir)}
        if spec.share is not None:
            env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(spec.share)
        if spec.memory_mib is not None:
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={spec.memory_mib}M"
        return worker, env


@dataclass(frozen=True)
class MigctlLauncher:
    """``migctl run --share N% [--parent GPU] [--memory M] [--oversubscribe] -- worker``: a
    soft-device lease, with migctl's own MPS daemon (``--launcher migctl``)."""

    migctl: tuple[str, ...] = ("migctl",)
    parent: str | None = None
    oversubscribe: bool = False

    def launch(self, spec: ClientSpec, worker: list[str]) -> tuple[list[str], dict[str, str]]:
        argv = [*self.migctl, "run", "--share", f"{spec.share or 100}%"]
        if self.parent is not None:
            argv += ["--parent", self.parent]
        if spec.memory_mib is not None:
            argv += ["--memory", f"{spec.memory_mib}MiB"]
        if self.oversubscribe:
            argv.append("--oversubscribe")
        return [*argv, "--", *worker], {}


def through_migctl(case: Case, memory_mib: int) -> Case:
    """``case`` as soft-device leases can ask for it: shares summing past 100% (both uncapped)
    need ``--oversubscribe`` and explicit memory limits (memory is hard: ``memory_mib`` split
    evenly where a client has none)."""
    if sum(spec.share or 100 for spec in case.clients) <= 100:
        return case
    each = memory_mib // len(case.clients)
    clients = tuple(
        spec if spec.memory_mib is not None else replace(spec, memory_mib=each)
        for spec in case.clients
    )
    return replace(case, clients=clients)


@dataclass(frozen=True)
class PlainLauncher:
    """No MPS: the pipe directory points where no daemon runs, so CUDA time-slices."""

    gpu_uuid: str
    empty_pipe_dir: Path

    def launch(self, spec: ClientSpec, worker: list[str]) -> tuple[list[str], dict[str, str]]:
        return worker, {
            "CUDA_VISIBLE_DEVICES": self.gpu_uuid,
            "CUDA_MPS_PIPE_DIRECTORY": str(self.empty_pipe_dir),
        }
