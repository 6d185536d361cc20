"""Start, query, stop and restart one parent's MPS control daemon (``nvidia-cuda-mps-control``).

Why this exists: soft devices need a running MPS control daemon per parent, with private
pipe and log directories (:mod:`migctl.mps.environment`), started with
``CUDA_VISIBLE_DEVICES`` naming the parent, quit cleanly, and started again when it
crashed (a pid file whose process is gone is a stale daemon: its pipe directory is cleaned
before the next start). Queries go through the program's stdin, as with the real one:
``get_server_list``, ``get_client_list <server>``, ``quit`` (replies: one PID a line).
Seen with driver 580: the daemon writes ``nvidia-cuda-mps-control.pid`` into its pipe
directory and removes it on ``quit``, leaving its sockets; the front end without a daemon
says "Cannot find MPS control daemon process" and exits 1. A client counts as attached
only when the server's client list holds its PID (a CUDA program that cannot reach the
daemon silently runs without MPS, with no share and no limit).

The program is a parameter (an argv prefix), so the simulator
(``python -m migctl.sim.mps_control``) stands in for it in tests. This module never
changes the GPU's compute mode: ``EXCLUSIVE_PROCESS`` is an administrator's choice that
needs NVML, passed in as a :class:`ComputeModeSetter` when asked for.
Importers: the layers that own soft devices (leases, run, layouts, the daemon).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from migctl.errors import (
    DriverError,
    InUseError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from migctl.host import is_alive, process_facts
from migctl.mps.environment import PARENT_FILE, MpsPaths, daemon_environment

log = logging.getLogger(__name__)

CONTROL_PROGRAM: tuple[str, ...] = ("nvidia-cuda-mps-control",)
PID_FILE = "nvidia-cuda-mps-control.pid"  # written by the daemon into its pipe directory
LOCK_FILE = "lifecycle.lock"  # beside pipe/ and log/: one start or stop at a time per parent
NOT_RUNNING_HINT = "start it with the layout (`migctl apply`), or see its log in {log_dir}"


class DaemonStatus(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    STALE = "stale"  # a pid file whose daemon is gone (crashed or killed)


@dataclass(frozen=True, slots=True)
class DaemonState:
    status: DaemonStatus
    pid: int | None = None


class ComputeModeSetter(Protocol):
    """The administrator's option to make a GPU EXCLUSIVE_PROCESS before MPS starts.

    NVML sets compute modes, and only the NVML backend may call NVML, so the caller passes
    an implementation; without one, the compute mode is left as it is.
    """

    def set_exclusive_process(self, parent_uuid: str) -> None: ...


class MpsControl:
    """The MPS control daemon of one parent (its directories in ``paths``)."""

    def __init__(
        self,
        paths: MpsPaths,
        *,
        program: Sequence[str] = CONTROL_PROGRAM,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        poll_s: float = 0.05,
    ) -> None:
        self.paths = paths
        self.program = tuple(program)
        self._env = daemon_environment(paths, env if env is not None else _inherited())
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    @property
    def label(self) -> str:
        return f"the MPS control daemon of {self.paths.parent_uuid}"

    def state(self) -> DaemonState:
        """RUNNING (with its PID), STOPPED, or STALE (pid file left by a dead daemon)."""
        try:
            pid = int((self.paths.pipe_dir / PID_FILE).read_text().strip())
        except FileNotFoundError:
            return DaemonState(DaemonStatus.STOPPED)
        except (OSError, ValueError):
            return DaemonState(DaemonStatus.STALE)
        if is_alive(pid, None) and self._is_control_program(pid):
            return DaemonState(DaemonStatus.RUNNING, pid)
        return DaemonState(DaemonStatus.STALE, pid)

    @contextlib.contextmanager
    def lifecycle(self) -> Iterator[None]:
        """Hold this parent's lifecycle lock: starts, stops and idle checks of one parent's
        daemon happen one at a time, across processes (an ``flock`` beside its directories)."""
        self.paths.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(self.paths.root / LOCK_FILE, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _is_control_program(self, pid: int) -> bool:
        command = process_facts(pid).command or ""
        return Path(self.program[-1]).name in command

    def start(self, *, compute_mode: ComputeModeSetter | None = None) -> int:
        """Start the daemon (a no-op when it runs); its PID. A stale one is cleaned first."""
        current = self.state()
        if current.status is DaemonStatus.RUNNING and current.pid is not None:
            return current.pid
        if current.status is DaemonStatus.STALE:
            self._clean_stale(current.pid)
        self.paths.create()
        if compute_mode is not None:
            compute_mode.set_exclusive_process(self.paths.parent_uuid)
        result = self._run(["-d"], "")
        if result.returncode != 0:
            raise DriverError(
                f"{self.label} did not start (exit {result.returncode}): "
                f"{_text(result) or 'no message'}",
                hint=f"see its log in {self.paths.log_dir}",
                context={"parent": self.paths.parent_uuid},
            )
        pid = self._wait_for(DaemonStatus.RUNNING)
        log.info("started MPS control daemon %d for %s", pid, self.paths.parent_uuid)
        return pid

    def ensure_running(self, *, compute_mode: ComputeModeSetter | None = None) -> bool:
        """Start the daemon (again) if it is not running, under the lifecycle lock; True when
        it had to (it was stopped, or it had crashed and left a stale pid file)."""
        if self.state().status is DaemonStatus.RUNNING:
            return False
        with self.lifecycle():
            if self.state().status is DaemonStatus.RUNNING:
                return False
            self.start(compute_mode=compute_mode)
        return True

    def stop(self, *, force: bool = False) -> bool:
        """Quit the daemon; False when none ran. InUseError while clients are attached,
        unless ``force`` (then they lose their MPS server)."""
        current = self.state()
        if current.status is DaemonStatus.STALE:
            self._clean_stale(current.pid)
        if current.status is not DaemonStatus.RUNNING:
            return False
        pids = sorted(p for clients in self.client_pids().values() for p in clients)
        if pids and not force:
            raise InUseError(
                f"{self.label} serves clients {', '.join(map(str, pids))}",
                hint="wait for them to exit (or end their leases), or force the stop",
                context={"parent": self.paths.parent_uuid, "pids": pids},
            )
        self.command("quit")
        self._wait_gone(current.pid or 0)
        with contextlib.suppress(FileNotFoundError):
            (self.paths.pipe_dir / PID_FILE).unlink()
        log.info("stopped MPS control daemon %s for %s", current.pid, self.paths.parent_uuid)
        return True

    def command(self, line: str) -> str:
        """One command on the daemon's stdin; its reply. InvalidStateError when not running."""
        if self.state().status is not DaemonStatus.RUNNING:
            raise InvalidStateError(
                f"{self.label} is not running",
                hint=NOT_RUNNING_HINT.format(log_dir=self.paths.log_dir),
                context={"parent": self.paths.parent_uuid},
            )
        result = self._run([], line + "\n")
        if result.returncode != 0:
            raise DriverError(
                f"{self.label} refused {line!r} (exit {result.returncode}): {_text(result)}",
                hint=f"see its log in {self.paths.log_dir}",
                context={"parent": self.paths.parent_uuid},
            )
        return result.stdout.strip()

    def servers(self) -> tuple[int, ...]:
        """The PIDs of the MPS servers this daemon runs (none until a client connects)."""
        return _pids(self.command("get_server_list"), "get_server_list")

    def clients(self, server: int) -> tuple[int, ...]:
        return _pids(self.command(f"get_client_list {server}"), "get_client_list")

    def client_pids(self) -> dict[int, tuple[int, ...]]:
        """Server PID -> the PIDs of its clients."""
        return {server: self.clients(server) for server in self.servers()}

    def attached(self, pid: int) -> bool:
        """Whether ``pid`` is a client of one of this daemon's servers."""
        return any(pid in clients for clients in self.client_pids().values())

    def wait_attached(self, pid: int, timeout_s: float | None = None) -> int:
        """The server ``pid`` attached to, waiting up to ``timeout_s``; InvalidStateError if
        it exits first or does not attach (it would run without MPS: no share, no limit)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            for server, clients in self.client_pids().items():
                if pid in clients:
                    return server
            if not is_alive(pid, None):
                raise InvalidStateError(
                    f"PID {pid} exited before it attached to {self.label}",
                    hint=f"see the program's output and the MPS log in {self.paths.log_dir}",
                )
            if time.monotonic() >= deadline:
                raise InvalidStateError(
                    f"PID {pid} has not attached to {self.label}: it may run without MPS "
                    "(then no SM share and no memory limit apply)",
                    hint="check CUDA_MPS_PIPE_DIRECTORY in its environment, and that it has "
                    "started using CUDA (a client attaches when CUDA initializes)",
                    context={"parent": self.paths.parent_uuid, "pid": pid},
                )
            time.sleep(self.poll_s)

    def _run(self, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        argv = [*self.program, *args]
        try:
            return subprocess.run(
                argv,
                input=stdin,
                env=self._env,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"the MPS control program {argv[0]!r} was not found",
                hint="install the NVIDIA driver's utilities (nvidia-cuda-mps-control), or pass "
                "its path",
            ) from exc
        except PermissionError as exc:
            raise PermissionDeniedError(f"cannot run {argv[0]!r}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DriverError(
                f"{self.label} did not answer {stdin.strip() or ' '.join(args)!r} within "
                f"{self.timeout_s:g} s",
                hint=f"see its log in {self.paths.log_dir}",
            ) from exc

    def _wait_for(self, *wanted: DaemonStatus) -> int:
        deadline = time.monotonic() + self.timeout_s
        while True:
            current = self.state()
            if current.status in wanted:
                return current.pid or 0
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"{self.label} is {current.status.value} after {self.timeout_s:g} s "
                    f"(waiting for {'/'.join(w.value for w in wanted)})",
                    hint=f"see its log in {self.paths.log_dir}",
                    context={"parent": self.paths.parent_uuid},
                )
            time.sleep(self.poll_s)

    def _wait_gone(self, pid: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        while is_alive(pid, None):
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"{self.label} (PID {pid}) did not quit within {self.timeout_s:g} s",
                    hint=f"see its log in {self.paths.log_dir}; it may still be ending its "
                    "servers: try again, or end PID {pid}",
                    context={"parent": self.paths.parent_uuid, "pid": pid},
                )
            time.sleep(self.poll_s)

    def _clean_stale(self, pid: int | None) -> None:
        """Empty the pipe directory a dead daemon left (it is private to this parent)."""
        log.warning(
            "MPS control daemon %s of %s is gone; cleaning %s",
            pid,
            self.paths.parent_uuid,
            self.paths.pipe_dir,
        )
        for entry in self.paths.pipe_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)


def known_daemons(state_dir: Path) -> tuple[MpsPaths, ...]:
    """Every parent with MPS directories under ``state_dir`` (to check or repair at start)."""
    found: list[MpsPaths] = []
    for marker in sorted((Path(state_dir) / "mps").glob(f"*/{PARENT_FILE}")):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found.append(MpsPaths(marker.parent, marker.read_text(encoding="utf-8").strip()))
    return tuple(found)


def _pids(text: str, command: str) -> tuple[int, ...]:
    pids: list[int] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.strip().isdigit():
            raise DriverError(f"unexpected reply to {command}: {line.strip()!r}")
        pids.append(int(line))
    return tuple(pids)


def _text(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-500:]


def _inherited() -> dict[str, str]:
    return dict(os.environ)
