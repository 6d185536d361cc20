"""The committed API schema (docs/openapi.json) matches the code, and the daemon serves it."""

from __future__ import annotations

import json
from pathlib import Path

from migctl.server.openapi import main, schema, schema_text
from tests.server.daemon import Daemon

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_text(), (
        "docs/openapi.json is stale: run `PYTHONPATH=src python -m migctl.server.openapi`"
    )
    assert main(["--check", "--out", str(COMMITTED)]) == 0


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert main(["--check", "--out", str(stale)]) == 1


def test_the_daemon_serves_the_same_schema(daemon: Daemon) -> None:
    with daemon.tcp() as anonymous:
        served = anonymous.get("/v1/openapi.json").json()
    assert json.dumps(served, sort_keys=True) == json.dumps(schema(), sort_keys=True)
    assert all(path.startswith("/v1/") for path in served["paths"])
