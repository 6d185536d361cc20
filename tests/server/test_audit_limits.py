"""The audit log cannot fill the disk, and no caller can flood the daemon.

* A request body is audited as its digest (SHA-256, size, a summary of at most 240
  characters), however big it was; no row's detail is bigger than 2 KiB.
* The audit log keeps the newest ``--audit-max-rows`` rows and none older than
  ``--audit-max-age-days``.
* Each caller has a token bucket (``--rate-limit`` for users, ``--admin-rate-limit`` for
  admins): an empty one answers 429 ``rate_limited`` with ``Retry-After``, audits nothing,
  and leaves every other caller alone; the CLI waits and retries by itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from migctl.cli.main import run
from migctl.errors import UsageError
from migctl.server.audit_detail import MAX_DETAIL_BYTES, SUMMARY_CHARS
from migctl.server.config import DEFAULT_USER_RATE, Rate, parse_rate
from tests.server.conftest import layout, split
from tests.server.daemon import Daemon, running

LIMITED = ("--rate-limit", "1:3", "--audit-max-rows", "20", "--admin-group", "nogroup")


def audit_rows(root: httpx.Client, actor: str | None = None) -> list[dict[str, Any]]:
    query = "/v1/audit?limit=1000" + (f"&actor={actor}" if actor else "")
    rows: list[dict[str, Any]] = root.get(query).json()
    return rows


def test_a_huge_plan_body_is_audited_as_its_digest(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    sent = json.dumps(layout("gpus: [" + "x" * (250 * 1024) + "]")).encode()
    with daemon.tcp(tokens["bob"]) as bob:
        for _ in range(5):
            answer = bob.post(
                "/v1/plan", content=sent, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422
    rows = [r for r in audit_rows(root, "bob") if r["path"] == "/v1/plan"][:5]
    assert len(rows) == 5
    for row in rows:
        request = row["detail"]["request"]
        assert request["sha256"] == hashlib.sha256(sent).hexdigest()
        assert request["bytes"] == len(sent)
        assert len(request["summary"]) <= SUMMARY_CHARS
        assert "xxxxxxxxxx" not in request["summary"]
        assert len(json.dumps(row["detail"])) <= MAX_DETAIL_BYTES


@pytest.fixture(scope="module")
def limited() -> Iterator[Daemon]:
    with running("h100-single", extra_args=LIMITED) as started:
        with started.client() as root:
            made = {}
            for name in ("carol", "dave"):
                answer = root.post("/v1/tokens", json={"name": name, "role": "user"})
                made[name] = answer.json()["token"]
        started.extra_env["TOKENS"] = json.dumps(made)
        yield started


def token_of(daemon: Daemon, name: str) -> str:
    token: str = json.loads(daemon.extra_env["TOKENS"])[name]
    return token


def drain(client: httpx.Client) -> httpx.Response:
    """Spend the caller's bucket; the first refusal."""
    for _ in range(20):
        answer = client.post("/v1/plan", json=split(2))
        if answer.status_code == 429:
            return answer
        assert answer.status_code == 200, answer.text
    raise AssertionError("never rate limited")


def test_an_empty_bucket_answers_429_and_only_to_its_caller(limited: Daemon) -> None:
    with limited.client() as root, limited.tcp(token_of(limited, "carol")) as carol:
        audited_before = len(audit_rows(root, "carol"))
        refused = drain(carol)
        body = refused.json()
        assert body["error"] == "rate_limited" and body["exit_code"] == 5
        assert "too many requests from carol (token carol, user)" in body["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-security-policy"].startswith("default-src 'none'")
        for _ in range(10):  # refused again: nothing is audited for a refusal
            assert carol.post("/v1/plan", json=split(2)).status_code == 429
        assert len(audit_rows(root, "carol")) - audited_before <= 3
        for _ in range(30):  # admins: unlimited by default
            assert root.get("/v1/whoami").status_code == 200
        with limited.tcp(token_of(limited, "dave")) as dave:
            assert dave.get("/v1/whoami").status_code == 200  # another caller's bucket
        assert carol.get("/v1/health").status_code == 200  # health is never limited
        time.sleep(float(refused.headers["retry-after"]))
        assert carol.get("/v1/whoami").status_code == 200


def test_anonymous_floods_do_not_lock_out_token_users(limited: Daemon) -> None:
    with limited.tcp() as anonymous, limited.tcp(token_of(limited, "dave")) as dave:
        statuses = [anonymous.delete("/v1/leases/1").status_code for _ in range(8)]
        assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429
        assert dave.get("/v1/whoami").status_code == 200


def test_the_cli_waits_for_the_bucket_and_goes_on(
    limited: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_URL", f"http://127.0.0.1:{limited.port}")
    monkeypatch.setenv("MIGCTL_TOKEN", token_of(limited, "dave"))
    with limited.tcp(token_of(limited, "dave")) as dave:
        drain(dave)
    capsys.readouterr()
    assert run(["-o", "json", "lease", "list"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["leases"] == []


def test_the_audit_log_keeps_its_newest_rows_only(limited: Daemon) -> None:
    with limited.client() as root:
        for number in range(60):
            assert root.delete(f"/v1/leases/{90000 + number}").status_code == 404
        rows = audit_rows(root)
    assert 20 <= len(rows) <= 22  # pruned every 2 rows past the cap of 20
    assert rows[0]["path"] == "/v1/leases/90059"
    assert rows[-1]["audit_id"] > rows[0]["audit_id"] - 22


def test_old_audit_rows_are_dropped() -> None:
    with running("h100-single", extra_args=("--audit-max-age-days", "0.00003")) as daemon:
        with daemon.client() as root:
            assert root.delete("/v1/leases/424242").status_code == 404
            assert any(r["path"] == "/v1/leases/424242" for r in audit_rows(root))
        time.sleep(3.0)  # older than 0.00003 days (2.6 s)
        daemon.stop()
        daemon.start()
        with daemon.client() as root:
            assert not any(r["path"] == "/v1/leases/424242" for r in audit_rows(root))
            notes = root.get("/v1/status").json()["startup"]
    assert any("pruned 1 audit row" in note for note in notes), notes


def test_rate_and_retention_options() -> None:
    assert parse_rate("10:100", "--rate-limit") == DEFAULT_USER_RATE
    assert parse_rate("2", "--rate-limit") == Rate(2.0, 20.0)
    assert parse_rate("0.05", "--rate-limit") == Rate(0.05, 1.0)
    assert parse_rate("unlimited", "--rate-limit") is None
    for bad in ("0", "-1", "fast", "1:0", "1:x"):
        with pytest.raises(UsageError):
            parse_rate(bad, "--rate-limit")
