"""``migctl token`` before the daemon's first start works directly, as docs/service.md says.

With no ``service.db`` yet, ``token create`` (``--via auto``) went through the API, found no
daemon and exited 10, although the state directory was the caller's to write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migctl.cli.main import run


def test_token_create_before_the_first_start_writes_the_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_SOCKET", str(tmp_path / "no-daemon.sock"))
    capsys.readouterr()
    assert run(["token", "create", "--name", "ci-bot", "--role", "user"]) == 0
    assert "\nmigctl_" in capsys.readouterr().out
    assert run(["-o", "json", "token", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed["tokens"]] == ["ci-bot"]


def test_token_commands_still_use_the_api_when_the_database_is_not_theirs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(locked / "state"))
    monkeypatch.setenv("MIGCTL_SOCKET", str(tmp_path / "no-daemon.sock"))
    monkeypatch.setattr("os.access", lambda path, mode: False)  # as a user who may not write
    capsys.readouterr()
    assert run(["token", "list"]) == 10  # through the API: no daemon answers
    assert "cannot reach the migctl daemon" in capsys.readouterr().err
