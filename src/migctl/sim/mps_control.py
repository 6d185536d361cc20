"""A stand-in for ``nvidia-cuda-mps-control``: ``python -m migctl.sim.mps_control [-d|-f]``.

Why this exists: migctl's MPS lifecycle code (:mod:`migctl.mps.control`) takes the control
program as a parameter; in tests and on the simulator this program plays its part, as a
real process, with the real program's interface:

* ``-d`` starts the daemon in the background (refused while one runs in the same pipe
  directory) and returns; ``-f`` runs it in the foreground;
* with no option, commands are read on stdin, one per line, and answered on stdout:
  ``get_server_list``, ``get_server_status ID``, ``get_client_list ID``, ``ps``,
  ``get_default_active_thread_percentage``, ``set_default_active_thread_percentage P``,
  ``get_default_device_pinned_mem_limit DEV``, ``set_default_device_pinned_mem_limit DEV
  VALUE``, ``terminate_client SERVER PID``, ``shutdown_server ID [-f]``, ``quit``. Without
  a running daemon it says "Cannot find MPS control daemon process" and exits 1.

In the pipe directory it keeps what the real daemon keeps (seen with driver 580 on an
H100): ``nvidia-cuda-mps-control.pid`` while it runs, and ``control``, ``control_lock``,
``control_privileged`` (plain files here, sockets there) that stay after ``quit``; its
own state is ``migctl-sim-mps.json``.

Environment: ``CUDA_MPS_PIPE_DIRECTORY`` (required: the simulator never uses the real
default, ``/tmp/nvidia-mps``), ``CUDA_MPS_LOG_DIRECTORY`` (``control.log``),
``CUDA_VISIBLE_DEVICES`` (the device the daemon serves), ``MIGCTL_SIM_MPS_MEMORY_MIB`` and
``MIGCTL_SIM_MPS_SMS`` (the simulated device; an H100 by default), and
``MIGCTL_SIM_MPS_LIFETIME_S`` (the daemon exits after that long, default 3600: a stray
test daemon never lingers) and ``MIGCTL_SIM_MPS_MACHINE`` (the state file of the simulated
machine whose NVML shows the clients as processes, :mod:`migctl.sim.mps_nvml`).
The model is in :mod:`migctl.sim.mps_state`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from migctl.files import atomic_write
from migctl.host import process_start_time
from migctl.sim.mps_nvml import machine_of_environment
from migctl.sim.mps_state import (
    DRAINING,
    PID_FILE,
    MpsStore,
    SimMps,
    parse_limit,
    reap,
)

PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
TICK_S = 0.05
NOT_FOUND = "Cannot find MPS control daemon process"  # the real front end's words (580)
SOCKETS = ("control", "control_lock", "control_privileged")


def _log(text: str) -> None:
    directory = os.environ.get(LOG_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with open(Path(directory) / "control.log", "a", encoding="utf-8") as handle:
            handle.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")


def _pipe_dir() -> Path:
    value = os.environ.get(PIPE_ENV)
    if not value:
        print(f"the simulator needs {PIPE_ENV} (it never uses /tmp/nvidia-mps)", file=sys.stderr)
        raise SystemExit(2)
    return Path(value)


def start_background(pipe_dir: Path) -> int:
    """``-d``: start ``-f`` in a new session and wait for its pid file."""
    if MpsStore(pipe_dir).read().daemon_alive():
        print("An instance of this daemon is already running", file=sys.stderr)
        return 1
    pipe_dir.mkdir(parents=True, exist_ok=True)
    (pipe_dir / PID_FILE).unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "migctl.sim.mps_control", "-f"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if int((pipe_dir / PID_FILE).read_text()) == child.pid:
                return 0
        if child.poll() is not None:
            print(f"the daemon exited at start (exit {child.returncode})", file=sys.stderr)
            return 1
        time.sleep(TICK_S)
    print("the daemon did not start within 10 s", file=sys.stderr)
    return 1


def _claim(state: SimMps) -> None:
    state.daemon_pid, state.daemon_start = os.getpid(), process_start_time(os.getpid())
    state.device = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    state.memory_mib = int(os.environ.get("MIGCTL_SIM_MPS_MEMORY_MIB", state.memory_mib))
    state.sm_count = int(os.environ.get("MIGCTL_SIM_MPS_SMS", state.sm_count))
    state.machine = machine_of_environment()
    state.servers, state.queued, state.quitting = [], [], False


def run_foreground(pipe_dir: Path) -> int:
    """``-f``: the daemon itself: keep the state tidy until ``quit`` (or SIGTERM)."""
    store = MpsStore(pipe_dir)
    with store.transaction() as state:
        if state.daemon_alive():
            print("An instance of this daemon is already running", file=sys.stderr)
            return 1
        _claim(state)
    for name in (*SOCKETS, "log"):  # what the real daemon creates (driver 580), as markers
        (pipe_dir / name).touch()
    atomic_write(pipe_dir / PID_FILE, f"{os.getpid()}\n")
    _log(f"control daemon {os.getpid()} started for {os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    lifetime_s = float(os.environ.get("MIGCTL_SIM_MPS_LIFETIME_S", "3600"))
    deadline = time.monotonic() + lifetime_s
    try:
        while not stop["now"] and time.monotonic() < deadline and pipe_dir.is_dir():
            with store.transaction() as state:
                if state.quitting or state.daemon_pid != os.getpid():
                    break
                reap(state)
            time.sleep(TICK_S)
    finally:
        _shut_down(store, pipe_dir)
    return 0


def _shut_down(store: MpsStore, pipe_dir: Path) -> None:
    if not pipe_dir.is_dir():
        return
    with store.transaction() as state:
        if state.daemon_pid == os.getpid():
            state.daemon_pid, state.daemon_start = None, None
            state.servers, state.queued, state.quitting = [], [], False
    (pipe_dir / PID_FILE).unlink(missing_ok=True)
    (pipe_dir / "log").unlink(missing_ok=True)  # the real daemon leaves only its sockets
    _log(f"control daemon {os.getpid()} exited")


def _ids(values: list[int]) -> str:
    return "\n".join(str(v) for v in values)


def _server_list(state: SimMps, args: list[str]) -> str:
    return _ids([s.server_id for s in state.servers])


def _server_status(state: SimMps, args: list[str]) -> str:
    server = state.server(int(args[0]))
    return server.status if server is not None else "NOT_FOUND"


def _client_list(state: SimMps, args: list[str]) -> str:
    server = state.server(int(args[0]))
    return _ids([c.pid for c in server.clients]) if server is not None else ""


def _ps(state: SimMps, args: list[str]) -> str:
    rows = ["PID ID SERVER DEVICE PERCENT LIMIT_MIB"]
    for server in state.servers:
        for c in server.clients:
            rows.append(
                f"{c.pid} {server.uid} {server.server_id} {state.device} {c.percent:g} {c.limit_mib}"
            )
    return "\n".join(rows)


def _set_percent(state: SimMps, args: list[str]) -> str:
    value = float(args[0])
    if not 0 < value <= 100:
        raise ValueError(f"active thread percentage {value} is not in (0, 100]")
    state.default_percent = value
    return ""


def _set_limit(state: SimMps, args: list[str]) -> str:
    state.default_limit_mib = parse_limit(f"{args[0]}={args[1]}")
    return ""


def _get_limit(state: SimMps, args: list[str]) -> str:
    return f"{state.default_limit_mib}M" if state.default_limit_mib is not None else "0"


def _terminate(state: SimMps, args: list[str]) -> str:
    server = state.server(int(args[0]))
    if server is not None:
        server.clients = [c for c in server.clients if c.pid != int(args[1])]
    return ""


def _shutdown_server(state: SimMps, args: list[str]) -> str:
    server = state.server(int(args[0]))
    if server is not None:
        server.status = DRAINING
        if args[1:] == ["-f"]:
            server.clients = []
        reap(state)
    return ""


def _quit(state: SimMps, args: list[str]) -> str:
    state.quitting = True
    return ""


COMMANDS: dict[str, tuple[int, Callable[[SimMps, list[str]], str]]] = {
    "get_server_list": (0, _server_list),
    "get_server_status": (1, _server_status),
    "get_client_list": (1, _client_list),
    "ps": (0, _ps),
    "get_default_active_thread_percentage": (0, lambda s, a: f"{s.default_percent:.1f}"),
    "set_default_active_thread_percentage": (1, _set_percent),
    "get_default_device_pinned_mem_limit": (1, _get_limit),
    "set_default_device_pinned_mem_limit": (2, _set_limit),
    "terminate_client": (2, _terminate),
    "shutdown_server": (1, _shutdown_server),
    "quit": (0, _quit),
}


def answer(store: MpsStore, line: str) -> tuple[str, bool]:
    """The reply to one command line, and whether it was understood."""
    words = line.split()
    entry = COMMANDS.get(words[0])
    if entry is None or len(words) - 1 < entry[0]:
        return f"unknown or incomplete command: {line}", False
    with store.transaction() as state:
        reap(state)
        try:
            return entry[1](state, words[1:]), True
        except ValueError as exc:
            return f"{words[0]}: {exc}", False


def front_end(pipe_dir: Path) -> int:
    """No option: answer the commands on stdin, as the real front end does."""
    store = MpsStore(pipe_dir)
    if not store.read().daemon_alive():
        print(NOT_FOUND, file=sys.stderr)
        return 1
    failed = False
    for line in sys.stdin:
        if not line.strip():
            continue
        reply, understood = answer(store, line.strip())
        if reply:
            print(reply, file=sys.stdout if understood else sys.stderr)
        failed |= not understood
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    pipe_dir = _pipe_dir()
    if args == ["-d"]:
        return start_background(pipe_dir)
    if args == ["-f"]:
        return run_foreground(pipe_dir)
    if args:
        print("usage: python -m migctl.sim.mps_control [-d | -f]", file=sys.stderr)
        return 2
    return front_end(pipe_dir)


if __name__ == "__main__":
    raise SystemExit(main())
