"""The daemon tests' helpers: a real ``migctl serve`` (from :mod:`migctl.testing`), raw requests.

Why this exists: the daemon's promises (kernel-verified identity on the socket, restarts that
lose nothing, a crash mid-apply repaired at the next start) only mean something for a real
process. :class:`Daemon` and :func:`running` are ``migctl.testing``'s :class:`RunningDaemon` and
:func:`running_daemon` (the helper users get too); this module adds what only these tests need:
:func:`raw_request` (the standard library only, safe after ``fork``) and :func:`as_user` (a
request as another uid; needs root). Only tests and benchmarks import this module.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any

from migctl.testing import RunningDaemon as Daemon
from migctl.testing import free_port, wait_healthy
from migctl.testing import running_daemon as running

__all__ = ["SRC", "Daemon", "as_user", "free_port", "raw_request", "running", "wait_healthy"]
SRC = Path(__file__).resolve().parents[2] / "src"


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
