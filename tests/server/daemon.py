"""Run a real ``migctl serve`` subprocess on a temporary socket (and TCP port) for tests.

Why this exists: the daemon's promises (kernel-verified identity on the socket, restarts that
lose nothing, a crash mid-apply repaired at the next start) only mean something for a real
process. :class:`Daemon` starts ``python -m migctl --sim MACHINE serve`` with its own simulator,
state and lease files, waits until ``/v1/health`` answers, and can be stopped (SIGTERM), killed
(SIGKILL) and started again on the same files. :func:`as_user` runs a request as another uid
(fork + setuid; needs root). Only tests and benchmarks import this module.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from migctl.catalog import load_catalog
from migctl.sim import SimControl, open_sim

SRC = Path(__file__).resolve().parents[2] / "src"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    process: subprocess.Popen[bytes],
    socket_path: Path,
    log: Callable[[], str],
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Wait until the daemon ``process`` answers ``/v1/health`` on ``socket_path``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited with {process.returncode}:\n{log()}")
        try:
            transport = httpx.HTTPTransport(uds=str(socket_path))
            with httpx.Client(transport=transport, base_url="http://migctl", timeout=60) as client:
                if client.get("/v1/health").status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"daemon not ready after {timeout_s} s:\n{log()}")


class Daemon:
    """One daemon's files and, while running, its process."""

    def __init__(
        self,
        machine: str = "h100-single",
        *,
        extra_args: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.machine = machine
        self.extra_args = extra_args
        self.extra_env = dict(extra_env or {})
        self.root = Path(tempfile.mkdtemp(prefix="migctl-test-"))
        self.root.chmod(0o755)  # other uids (as_user) must reach the socket
        self.socket_path = self.root / "d.sock"
        self.sim_dir = self.root / "sim"
        self.state_dir = self.root / "state"
        self.lease_db = self.root / "leases.db"
        self.log_path = self.root / "daemon.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
        env.update(
            PYTHONPATH=str(SRC),
            MIGCTL_SIM_DIR=str(self.sim_dir),
            MIGCTL_STATE_DIR=str(self.state_dir),
            MIGCTL_LEASE_DB=str(self.lease_db),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Daemon:
        command = [
            sys.executable, "-m", "migctl", "--sim", self.machine, "serve",
            "--socket", str(self.socket_path), "--tcp", f"127.0.0.1:{self.port}",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        wait_healthy(self.process, self.socket_path, self.log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        return self._end(signal.SIGKILL)

    def _end(self, signum: int) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        """Wait for the daemon to end by itself (e.g. killed by an injected fault)."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        return code

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, token: str | None = None) -> httpx.Client:
        """A client over the Unix socket (as this test process's uid)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(uds=str(self.socket_path))
        return httpx.Client(
            transport=transport, base_url="http://migctl", headers=headers, timeout=60
        )

    def tcp(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=60)

    def sim(self) -> SimControl:
        return SimControl(open_sim(self.machine, load_catalog(), self.sim_dir))


@contextmanager
def running(
    machine: str = "h100-single",
    *,
    extra_args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Daemon]:
    daemon = Daemon(machine, extra_args=extra_args, extra_env=extra_env)
    try:
        yield daemon.start()
    except BaseException:
        print(daemon.log(), file=sys.stderr)
        raise
    finally:
        daemon.cleanup()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("migctl", timeout=30)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def raw_request(socket_path: Path, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One request over the socket with the standard library only (safe after fork)."""
    connection = _UnixConnection(socket_path)
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, json.loads(data) if data else None


def as_user(
    uid: int, gid: int, socket_path: Path, method: str, path: str, *, body: object = None
) -> tuple[int, Any]:
    """:func:`raw_request` from a forked child running as ``uid``/``gid`` (needs root)."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            result: object = {"result": raw_request(socket_path, method, path, body)}
        except BaseException as exc:
            result = {"error": repr(exc)}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(child, 0)
    answer = json.loads(b"".join(chunks))
    if "error" in answer:
        raise RuntimeError(f"request as uid {uid} failed: {answer['error']}")
    status, data = answer["result"]
    return int(status), data
