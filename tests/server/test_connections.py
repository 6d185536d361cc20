"""Connections that never finish a request are closed, and nobody can lock the admins out.

A daemon with short deadlines and small budgets: half-sent requests (the slowloris pattern) are
closed after the header or body timeout; a connection over its budget is answered at once
(429 for one user's budget, 503 for the shared ones) and closed; meanwhile root on the socket,
other users and other listeners are still served. The per-user tests open connections as the
users ``daemon``, ``bin`` and ``sys`` (fork + setuid, the descriptors passed back: needs root).
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migctl.server.config import ConnectionLimits
from migctl.server.connections import FD_RESERVE, shrink
from tests.server.daemon import Daemon, as_user, running

ROOT = Path(__file__).resolve().parents[2]
HALF_HEAD = b"GET /v1/whoami HTTP/1.1\r\nHost: migctl\r\nX-Slow: "
GUARDED = (
    "--header-timeout", "2", "--body-timeout", "2",
    "--max-user-connections", "3", "--max-connections", "5",
    "--max-tcp-connections", "4", "--admin-connections", "4",
    "--admin-group", "nogroup",
)  # fmt: skip
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as other users")


@pytest.fixture(scope="module")
def guarded() -> Iterator[Daemon]:
    with running("h100-single", extra_args=GUARDED) as daemon:
        yield daemon


def account(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def connect_as(name: str, path: Path, count: int) -> list[socket.socket]:
    """``count`` connections to the socket ``path`` made by user ``name`` (held by this process:
    the daemon sees the user who connected)."""
    uid, gid = account(name)
    parent, child_end = socket.socketpair()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            made = []
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                made.append(sock)
            socket.send_fds(child_end, [b"x"], [s.fileno() for s in made])
        finally:
            os._exit(0)
    _, fds, _, _ = socket.recv_fds(parent, 16, count)
    os.waitpid(child, 0)
    parent.close()
    child_end.close()
    return [socket.socket(fileno=fd) for fd in fds]


def half_open(socks: list[socket.socket]) -> list[socket.socket]:
    for sock in socks:
        sock.sendall(HALF_HEAD)
    return socks


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP answer (status, body) read from ``sock``."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def refusal(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The answer the daemon writes to a connection it refuses at once."""
    status, body = read_answer(sock)
    sock.close()
    return status, json.loads(body)


def assert_closed_by_the_daemon(socks: list[socket.socket], within_s: float) -> None:
    started = time.monotonic()
    for sock in socks:
        sock.settimeout(within_s + 2)
        assert sock.recv(100) == b"", "the daemon answered instead of closing"
    assert time.monotonic() - started < within_s + 2


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def whoami_as(daemon: Daemon, name: str) -> int:
    uid, gid = account(name)
    status, _ = as_user(uid, gid, daemon.socket_path, "GET", "/v1/whoami")
    return status


def tcp_half_open(daemon: Daemon, count: int) -> list[socket.socket]:
    return half_open([socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(count)])


def test_a_tcp_flood_is_refused_and_closed_while_the_socket_serves(guarded: Daemon) -> None:
    flood = tcp_half_open(guarded, 4)  # fills the TCP budget
    time.sleep(0.2)
    status, body = refusal(socket.create_connection(("127.0.0.1", guarded.port)))
    assert status == 503 and body["error"] == "insufficient_resources" and body["exit_code"] == 5
    assert "4 for tcp" in body["message"]
    with guarded.client() as root:
        assert root.get("/v1/whoami").json()["name"] == "root"  # the socket is untouched
    assert all(still_open(sock) for sock in flood)
    assert_closed_by_the_daemon(flood, within_s=2.0)  # --header-timeout 2
    with guarded.tcp() as anonymous:
        assert anonymous.get("/v1/health").status_code == 200  # room again
    assert "Too many open files" not in guarded.log() and "Traceback" not in guarded.log()


def test_idle_and_kept_alive_connections_must_send_a_whole_request_in_time(guarded: Daemon) -> None:
    silent = socket.create_connection(("127.0.0.1", guarded.port))  # sends nothing at all
    kept = socket.create_connection(("127.0.0.1", guarded.port))
    kept.sendall(b"GET /v1/health HTTP/1.1\r\nHost: migctl\r\n\r\n")
    assert read_answer(kept)[0] == 200
    kept.sendall(HALF_HEAD)  # the second request never ends
    assert_closed_by_the_daemon([silent, kept], within_s=2.0)
    body = socket.create_connection(("127.0.0.1", guarded.port))
    body.sendall(
        b"POST /v1/plan HTTP/1.1\r\nHost: migctl\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"split"'
    )
    assert_closed_by_the_daemon([body], within_s=2.0)  # --body-timeout 2


@needs_root
def test_one_users_connections_never_lock_out_others_or_the_admins(guarded: Daemon) -> None:
    mine = half_open(connect_as("daemon", guarded.socket_path, 3))  # --max-user-connections 3
    time.sleep(0.2)
    (fourth,) = connect_as("daemon", guarded.socket_path, 1)
    status, body = refusal(fourth)
    assert status == 429 and body["error"] == "rate_limited"
    assert body["message"] == "too many connections from daemon (uid 1): at most 3 at once"
    assert whoami_as(guarded, "bin") == 200  # another user
    with guarded.client() as root:
        assert root.get("/v1/whoami").status_code == 200  # root
    others = half_open(connect_as("bin", guarded.socket_path, 2))  # users: 5 of 5 now
    time.sleep(0.2)
    (sys_user,) = connect_as("sys", guarded.socket_path, 1)
    status, body = refusal(sys_user)
    assert status == 503 and "5 for users" in body["message"]
    with guarded.client() as root:
        assert root.get("/v1/whoami").status_code == 200  # admins have their own budget
    assert_closed_by_the_daemon(mine + others, within_s=2.0)
    assert whoami_as(guarded, "daemon") == 200  # its slots came back


def test_the_admins_budget_is_their_own() -> None:
    """Admins fill only their own budget; users and TCP are unaffected."""
    with running("h100-single", extra_args=GUARDED) as daemon:
        mine = half_open([_unix(daemon.socket_path) for _ in range(4)])  # root: admins 4 of 4
        time.sleep(0.2)
        status, body = refusal(_unix(daemon.socket_path))
        assert status == 503 and "4 for admins" in body["message"]
        with daemon.tcp() as anonymous:
            assert anonymous.get("/v1/health").status_code == 200
        assert_closed_by_the_daemon(mine, within_s=2.0)
        with daemon.client() as root:
            assert root.get("/v1/whoami").status_code == 200


def _unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


def test_budgets_fit_the_open_file_limit_and_the_unit_allows_them() -> None:
    limits = ConnectionLimits()
    assert shrink(limits, 100_000) == limits
    small = shrink(limits, 1024)
    assert small.admins == limits.admins  # never cut
    assert small.users + small.tcp + small.admins + FD_RESERVE <= 1024
    assert 1 <= small.per_user <= small.users
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "migctl.service")
    assert int(unit["Service"]["LimitNOFILE"]) >= limits.total + FD_RESERVE
