"""The daemon's HTTP client: a rate-limited request is sent again after its Retry-After."""

from __future__ import annotations

import httpx
import pytest

from migctl.client.http import DaemonClient
from migctl.errors import MigctlError

LIMITED = {"error": "rate_limited", "message": "slow down", "exit_code": 5, "context": {}}


def client_answering(answers: list[httpx.Response]) -> tuple[DaemonClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    client = DaemonClient(url="http://daemon")
    client.http = httpx.Client(base_url="http://daemon", transport=httpx.MockTransport(handler))
    return client, seen


def test_a_429_is_retried_after_its_retry_after() -> None:
    client, seen = client_answering(
        [
            httpx.Response(429, json=LIMITED, headers={"Retry-After": "0.05"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    assert client.request("GET", "/v1/leases") == {"ok": True}
    assert len(seen) == 2


def test_a_429_asking_more_patience_than_allowed_is_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("migctl.client.http.RATE_LIMIT_PATIENCE_S", 0.01)
    client, seen = client_answering(
        [httpx.Response(429, json=LIMITED, headers={"Retry-After": "5"})]
    )
    with pytest.raises(MigctlError, match="slow down") as caught:
        client.request("GET", "/v1/leases")
    assert caught.value.kind == "rate_limited" and len(seen) == 1
