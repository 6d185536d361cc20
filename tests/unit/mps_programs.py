"""Helpers for the MPS tests: the simulated control program and simulated CUDA clients.

Each test gets its own short state directory (an MPS pipe directory must stay short enough
for a Unix socket path) and every daemon and client started here is ended at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from migctl.host import is_alive
from migctl.mps.control import MpsControl
from migctl.mps.environment import MpsPaths, mps_paths

SIM_CONTROL = (sys.executable, "-m", "migctl.sim.mps_control")
SIM_CLIENT = (sys.executable, "-m", "migctl.sim.mps_client")
BASE_ENV = {**os.environ, "MIGCTL_SIM_MPS_LIFETIME_S": "120"}


@contextlib.contextmanager
def short_state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mps", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Clients:
    """Simulated CUDA programs started by a test; all are killed at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*SIM_CLIENT, *args],
            env={**BASE_ENV, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
                    process.kill()
            process.communicate(timeout=10)


def events(process: subprocess.Popen[str], timeout_s: float = 30) -> list[dict[str, Any]]:
    """Wait for a client to end; its JSON events."""
    out, _ = process.communicate(timeout=timeout_s)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_event(process: subprocess.Popen[str], name: str, timeout_s: float = 20) -> dict[str, Any]:
    """Read a running client's events until ``name`` (AssertionError otherwise)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        event: dict[str, Any] = json.loads(line)
        if event["event"] == name:
            return event
    raise AssertionError(f"client {process.pid} never reported {name!r}")


def control_for(state_dir: Path, parent_uuid: str, **env: str) -> MpsControl:
    paths: MpsPaths = mps_paths(state_dir, parent_uuid)
    return MpsControl(paths, program=SIM_CONTROL, env={**BASE_ENV, **env}, timeout_s=15)


def end_daemon(control: MpsControl) -> None:
    """Teardown: quit the daemon whatever state the test left it in."""
    pid = control.state().pid
    with contextlib.suppress(Exception):
        control.stop(force=True)
    if pid is not None and is_alive(pid, None) and control.state().pid == pid:
        os.kill(pid, signal.SIGKILL)
