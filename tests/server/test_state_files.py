"""The daemon's own database (service.db): made whole or not at all, never silently replaced.

A ``service.db`` that is empty, not SQLite, or damaged is refused with a message that names the
file and says how to recover; the daemon does not start afresh over it (it would forget every
token and answer 401 to the admin). The file is left exactly as it was found.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from migctl.server.statedb import SCHEMA_VERSION, DamagedStateError, StateDB
from migctl.server.tokens import TokenStore
from tests.server.daemon import Daemon


def made_with_tokens(path: Path, count: int = 200) -> None:
    """A real service.db with enough tokens to fill several pages."""
    db = StateDB(path)
    tokens = TokenStore(db)
    for number in range(count):
        tokens.create(name=f"token-{number:04d}", role="user", owner="alice", created_by="root")
    db.close()  # the last connection to close checkpoints the WAL into the file


def damage(path: Path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"not a database\n" * 500)
    else:  # truncated to its first half (a full disk, an interrupted copy)
        made_with_tokens(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated"])
def test_a_damaged_service_db_is_refused_and_left_alone(tmp_path: Path, how: str) -> None:
    path = tmp_path / "service.db"
    damage(path, how)
    before = path.read_bytes()
    with pytest.raises(DamagedStateError) as caught:
        StateDB(path)
    error = caught.value
    assert str(path) in error.message and error.exit_code == 10
    assert error.hint is not None and f"mv {path} {path}.damaged" in error.hint
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["service.db"]


def test_a_new_service_db_is_made_whole_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "state" / "service.db"
    made_with_tokens(path, count=3)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".service.db.new")]
    again = StateDB(path)
    assert len(TokenStore(again).list_tokens()) == 3
    version = again.read("PRAGMA user_version")[0][0]
    assert version == SCHEMA_VERSION
    again.close()


def test_two_creators_at_once_share_one_database(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    opened: list[StateDB] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            opened.append(StateDB(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 4
    TokenStore(opened[0]).create(name="shared", role="user", owner="alice", created_by="root")
    assert [t.name for t in TokenStore(opened[3]).list_tokens()] == ["shared"]
    for db in opened:
        db.close()


def test_the_daemon_refuses_to_start_on_an_empty_service_db() -> None:
    daemon = Daemon()
    try:
        daemon.state_dir.mkdir(parents=True)
        state_db = daemon.state_dir / "service.db"
        state_db.write_bytes(b"")
        command = [
            sys.executable, "-m", "migctl", "--sim", daemon.machine, "serve",
            "--socket", str(daemon.socket_path),
        ]  # fmt: skip
        done = subprocess.run(
            command, check=False, env=daemon.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 10, done.stderr
        assert f"the service database {state_db} is empty (0 bytes)" in done.stderr
        assert "mv " in done.stderr and "Traceback" not in done.stderr
        assert state_db.read_bytes() == b""
        assert not daemon.socket_path.exists()
    finally:
        daemon.cleanup()
