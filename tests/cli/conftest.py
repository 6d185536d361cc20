"""Fixtures for the CLI against a real migctl daemon (``tests/cli/test_daemon_mode*.py``).

One daemon per test module serves a simulated H100 split into 7 x 1g.10gb, with
``--admin-group nogroup`` (so a client running as ``nobody`` is an admin and one running as
``daemon`` a plain user, when the tests run as root). ``via_daemon`` points ``MIGCTL_URL`` at
its socket for one test and ends every lease afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from migctl.cli.main import run
from migctl.node.open import connect
from migctl.schemas.layouts import SplitTarget
from migctl.settings import Settings
from tests.server.daemon import Daemon, running


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def migctl(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """Run the CLI in this process; its exit code and what it printed."""
    capsys.readouterr()
    code = run(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process: exit code, stdout, stderr; a traceback fails the test."""
    result = migctl(capsys, *argv)
    assert "Traceback" not in result.out + result.err
    return result.code, result.out, result.err


def run_cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """``-o json`` ARGV, which must succeed: its JSON."""
    code, out, err = run_cli(capsys, "-o", "json", *argv)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def apply_split(daemon: Daemon, n: int) -> None:
    """Split the daemon's GPU ``n`` ways, as a Python user would: through a RemoteNode."""
    with connect(socket=daemon.socket_path, settings=Settings.from_env({})) as node:
        outcome = node.apply(SplitTarget(n=n), force=True)
    assert outcome.failure is None, outcome.failure


def daemon_devices(daemon: Daemon) -> list[str]:
    """The MIG device uuids the daemon reports, by GPU and placement."""
    with daemon.client() as root:
        inventory = root.get("/v1/inventory").json()
    return [
        device["uuid"]
        for gpu in inventory["gpus"]
        for gi in gpu["gpu_instances"]
        for device in gi["mig_devices"]
    ]


def end_all_leases(daemon: Daemon) -> None:
    with daemon.client() as root:
        for lease in root.get("/v1/leases").json():
            ended = root.delete(f"/v1/leases/{lease['lease_id']}")  # an admin: anyone's
            assert ended.status_code == 200, ended.text


@pytest.fixture(scope="module")
def cli_daemon() -> Iterator[Daemon]:
    with running("h100-single", extra_args=("--admin-group", "nogroup")) as started:
        apply_split(started, 7)
        yield started


@pytest.fixture(scope="module")
def user_tokens(cli_daemon: Daemon) -> dict[str, str]:
    """User tokens for alice and bob (TCP clients that are not admins)."""
    made = {}
    with cli_daemon.client() as root:
        for name in ("alice", "bob"):
            response = root.post("/v1/tokens", json={"name": name, "role": "user"})
            assert response.status_code == 201, response.text
            made[name] = response.json()["token"]
    return made


@pytest.fixture
def via_daemon(cli_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """MIGCTL_URL names the daemon's socket for this test; no lease outlives it."""
    monkeypatch.setenv("MIGCTL_URL", f"unix://{cli_daemon.socket_path}")
    yield cli_daemon
    end_all_leases(cli_daemon)


@pytest.fixture
def as_alice(
    cli_daemon: Daemon, user_tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    """The daemon over TCP with alice's user token (no admin role)."""
    monkeypatch.setenv("MIGCTL_URL", f"http://127.0.0.1:{cli_daemon.port}")
    monkeypatch.setenv("MIGCTL_TOKEN", user_tokens["alice"])
    yield cli_daemon
    end_all_leases(cli_daemon)
