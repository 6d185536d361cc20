"""``migctl token``: directly on the daemon's state database (as its owner) or through the API."""

from __future__ import annotations

import json
import os

import pytest

from migctl.cli.main import run
from tests.server.daemon import Daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's state belongs to root")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = run(["-o", "json", "token", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out or err)


def test_direct_create_list_revoke_take_effect_on_the_running_daemon(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(daemon.state_dir)]
    code, created = cli(capsys, "create", "--name", "cli-admin", "--role", "admin", *state)
    assert code == 0 and created["kind"] == "TokenCreated"
    secret = str(created["token"])
    with daemon.tcp(secret) as client:
        assert client.get("/v1/whoami").json()["role"] == "admin"
        code, listed = cli(capsys, "list", *state)
        names = {t["name"]: t for t in listed["tokens"]}  # type: ignore[attr-defined]
        assert code == 0 and names["cli-admin"]["active"] and "token" not in names["cli-admin"]
        code, _ = cli(capsys, "revoke", "cli-admin", *state)
        assert code == 0
        assert client.get("/v1/whoami").status_code == 401
    with daemon.client() as root:
        rows = root.get("/v1/audit?actor=root").json()
        assert {"token create", "token revoke"} <= {
            r["action"] for r in rows if r["via"] == "direct"
        }


def test_through_the_api_as_admin_and_refused_as_user(
    daemon: Daemon, tokens: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    socket = ["--via", "api", "--socket", str(daemon.socket_path)]
    code, created = cli(capsys, "create", "--name", "api-made", "--role", "user", *socket)
    assert code == 0 and created["info"]["created_by"] == "root"  # type: ignore[index]
    url = ["--via", "api", "--url", f"http://127.0.0.1:{daemon.port}"]
    code, error = cli(capsys, "list", *url, "--token", tokens["bob"])
    assert code == 4 and error["error"] == "permission_denied"
    code, error = cli(capsys, "list", *url)
    assert code == 4 and error["error"] == "unauthenticated"
    code, revoked = cli(capsys, "revoke", "api-made", *url, "--token", tokens["ops"])
    assert code == 0 and revoked["info"]["revoked_by"] == "ops"  # type: ignore[index]


def test_an_unreachable_daemon_is_a_clear_error(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(daemon.root / "no.sock")
    code, error = cli(capsys, "list", "--via", "api", "--socket", missing)
    assert code == 10 and "cannot reach the migctl daemon" in str(error["message"])
