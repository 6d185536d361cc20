"""A simulated CUDA program under MPS: ``python -m migctl.sim.mps_client [options]``.

Why this exists: to test soft devices end to end without a GPU, a real process must do what
a CUDA program does when it initializes under MPS: read its environment, reach the control
daemon of ``CUDA_MPS_PIPE_DIRECTORY`` (or run without MPS when there is none, as CUDA
silently does), join the server of its user (or wait in the queue), see its share of SMs,
allocate memory within its pinned limit, and fail when its server fails. It prints one
JSON line per event on stdout and exits with:

  0 done   2 usage   3 CUDA initialization failed (bad environment, device not visible)
  4 lost its server (a fatal fault in another client, ``quit``, terminated)
  5 out of memory   6 refused (the server is winding down after a fault)
  7 still queued behind another user after ``--wait-s``   9 it raised a fatal fault

``--uid`` makes it claim another user's UID (the model's stand-in for a second Unix user).
While attached, it shows in the simulated machine's NVML as a process on its device (with the
memory it allocated), as a real MPS client does (:mod:`migctl.sim.mps_nvml`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from migctl.host import process_start_time
from migctl.sim.mps_nvml import register, unregister
from migctl.sim.mps_state import (
    FAULTED,
    MpsStore,
    SimClient,
    allocate,
    connect,
    fault,
    parse_limit,
    sms_seen,
)

TICK_S = 0.05
LOST, OOM, REFUSED, QUEUED, FAULTING = 4, 5, 6, 7, 9


class ClientExit(Exception):
    def __init__(self, code: int, event: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.event, self.detail = code, event, detail


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}), flush=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m migctl.sim.mps_client")
    parser.add_argument("--hold-s", type=float, default=0.0, help="stay attached this long")
    parser.add_argument("--alloc-mib", type=int, action="append", default=[], help="allocate")
    parser.add_argument("--fault-after-s", type=float, default=None, help="raise a fatal fault")
    parser.add_argument("--wait-s", type=float, default=30.0, help="longest wait in the queue")
    parser.add_argument("--uid", type=int, default=os.getuid(), help="the user to claim")
    return parser.parse_args(argv)


def _client(args: argparse.Namespace) -> SimClient:
    """This process as the server will see it; ClientExit(3) when CUDA would not start."""
    percent_text = os.environ.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE")
    limit_text = os.environ.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT")
    try:
        percent = float(percent_text) if percent_text else -1.0
        if percent_text and not 0 < percent <= 100:
            raise ValueError(f"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={percent_text} is not in (0, 100]")
        limit = parse_limit(limit_text) if limit_text else None
    except ValueError as exc:
        raise ClientExit(3, "init-failed", str(exc)) from exc
    pid = os.getpid()
    return SimClient(
        pid=pid, start_time=process_start_time(pid), uid=args.uid, percent=percent, limit_mib=limit
    )


def _join(store: MpsStore, client: SimClient, wait_s: float) -> int:
    """Attach (waiting in the queue up to ``wait_s``); the server ID."""
    with store.transaction() as state:
        device = os.environ.get("CUDA_VISIBLE_DEVICES")
        if state.device and device and device != state.device:
            raise ClientExit(
                3,
                "init-failed",
                f"device {device} is not served by this MPS daemon ({state.device})",
            )
        if client.percent < 0:
            client.percent = state.default_percent
        outcome = connect(state, client)
    if outcome.startswith("refused"):
        raise ClientExit(REFUSED, "refused", outcome)
    if outcome == "queued":
        emit("queued")
    deadline = time.monotonic() + wait_s
    while True:
        with store.transaction() as state:
            connect_state = state.client(client.pid)
            if connect_state is not None:
                server, _ = connect_state
                server_id = server.server_id
                attached = {
                    "server": server_id,
                    "percent": client.percent,
                    "sms": sms_seen(state, client.percent),
                    "limit_mib": client.limit_mib,
                }
                break
            if time.monotonic() >= deadline:
                raise ClientExit(
                    QUEUED, "still-queued", f"queued behind another user for {wait_s:g} s"
                )
        time.sleep(TICK_S)
    register(state.machine, state.device, client.pid)  # shown on its device, as NVML does
    emit("attached", **attached)
    return server_id


def _hold(store: MpsStore, pid: int, until: float) -> None:
    while time.monotonic() < until:
        state = store.read()
        found = state.client(pid)
        if not state.daemon_alive() or found is None:
            raise ClientExit(LOST, "lost-server", "the MPS server is gone (quit or terminated)")
        if found[0].status == FAULTED:
            raise ClientExit(LOST, "lost-server", found[0].fault)
        time.sleep(TICK_S)


def _attached_run(store: MpsStore, client: SimClient, args: argparse.Namespace) -> None:
    _join(store, client, args.wait_s)
    for mib in args.alloc_mib:
        with store.transaction() as state:
            result = allocate(state, client.pid, mib)
            found = state.client(client.pid)
            used = found[1].allocated_mib if found is not None else 0
        emit("alloc", mib=mib, result=result)
        if result != "ok":
            raise ClientExit(OOM, "out-of-memory", result)
        register(state.machine, state.device, client.pid, used)
    if args.fault_after_s is not None:
        _hold(store, client.pid, time.monotonic() + args.fault_after_s)
        with store.transaction() as state:
            ended = fault(state, client.pid, "illegal memory access (simulated)")
        raise ClientExit(FAULTING, "faulted", f"raised a fatal fault; {ended} clients fail")
    _hold(store, client.pid, time.monotonic() + args.hold_s)


def _leave(store: MpsStore, pid: int) -> None:
    with store.transaction() as state:
        for server in state.servers:
            server.clients = [c for c in server.clients if c.pid != pid]
        state.queued = [c for c in state.queued if c.pid != pid]
    unregister(state.machine, pid)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    store = MpsStore(Path(pipe)) if pipe else None
    try:
        client = _client(args)
        if store is None or not store.read().daemon_alive():
            emit("no-mps", detail="no MPS control daemon: running without MPS (no share, no limit)")
            time.sleep(args.hold_s)
            return 0
        try:
            _attached_run(store, client, args)
        finally:
            _leave(store, client.pid)
    except ClientExit as end:
        emit(end.event, detail=end.detail)
        return end.code
    emit("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
