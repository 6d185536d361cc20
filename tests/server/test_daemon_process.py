"""The daemon as a process: one per socket, found by clients, refused requests still audited."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from migctl.client.discovery import probe_socket
from migctl.client.http import DaemonClient
from migctl.errors import MigctlError
from tests.server.daemon import Daemon


def test_a_second_daemon_on_the_same_socket_is_refused(daemon: Daemon) -> None:
    other = Daemon("h100-single")
    try:
        env = other.env
        command = [sys.executable, "-m", "migctl", "--sim", "h100-single", "serve",
                   "--socket", str(daemon.socket_path)]  # fmt: skip
        done = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        other.cleanup()
    assert done.returncode == 6, done.stderr
    assert "another daemon is listening" in done.stderr
    with daemon.client() as client:
        assert client.get("/v1/health").status_code == 200  # the first one is untouched


def test_clients_find_a_running_daemon(daemon: Daemon) -> None:
    found = probe_socket(daemon.socket_path)
    try:
        assert found.request("GET", "/v1/whoami")["via"] == "socket"
    finally:
        found.close()
    with pytest.raises(MigctlError):  # a socket file nobody answers on is an error, never local
        probe_socket(daemon.root / "missing.sock")
    nobody = DaemonClient(socket_path=daemon.root / "missing.sock")
    try:
        assert not nobody.reachable()
    finally:
        nobody.close()


def test_a_request_refused_before_authentication_is_audited_with_the_kernels_name(
    daemon: Daemon, root: httpx.Client
) -> None:
    bad = root.post("/v1/leases", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    row = root.get("/v1/audit?limit=5").json()
    refused = next(e for e in row if e["status"] == 400 and e["path"] == "/v1/leases")
    assert (refused["actor"], refused["via"], refused["result"]) == ("root", "socket", "error")
