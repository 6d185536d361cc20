"""Bad input is refused with a 4xx in migctl's error shape, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import instances, split
from tests.server.daemon import Daemon


def snapshot(root: httpx.Client) -> dict[str, Any]:
    """Everything a bad request must leave alone."""
    inventory = root.get("/v1/inventory").json()
    return {
        "devices": sorted(
            d["uuid"] for i in inventory["gpus"][0]["gpu_instances"] for d in i["mig_devices"]
        ),
        "leases": root.get("/v1/leases?history=true").json(),
        "jobs": [j["job_id"] for j in root.get("/v1/jobs").json()],
        "tokens": [t["token_id"] for t in root.get("/v1/tokens").json()],
        "layout": root.get("/v1/layout").json(),
    }


@pytest.fixture
def unchanged(root: httpx.Client) -> Iterator[None]:
    before = snapshot(root)
    yield
    assert snapshot(root) == before


def assert_error(response: httpx.Response, status: int, kind: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    # migctl's error shape, as ``--output json`` prints it; an error class may add structured
    # detail beside it (the planner's refusals: ``obstacles`` and ``nearest``)
    assert set(body) >= {"error", "message", "hint", "exit_code", "context"}
    assert set(body) <= {"error", "message", "hint", "exit_code", "context", "obstacles", "nearest"}
    assert body["error"] == kind, body
    for word in words:
        assert word in body["message"], body["message"]


TOO_MANY = ",".join(["1g.10gb"] * 65).encode()
BAD_BODIES = [
    # (path, raw body, status, kind, words in the message)
    ("/v1/leases", b'{"profile": ', 400, "invalid_input", ("not valid JSON",)),
    ("/v1/apply", b"split=7", 400, "invalid_input", ("not valid JSON",)),
    ("/v1/leases", b'{"profile": 7}', 422, "invalid_input", ("profile",)),
    ("/v1/leases", b'{"wait_seconds": "soon"}', 422, "invalid_input", ("wait_seconds",)),
    ("/v1/leases", b'{"ttl": 60}', 422, "invalid_input", ("ttl", "Extra inputs")),
    ("/v1/leases", b'{"ttl_seconds": 0}', 422, "invalid_input", ("ttl_seconds",)),
    ("/v1/leases", b'{"uuid": "MIG-x-y", "profile": "1g.10gb"}', 422, "invalid_input", ("not both",)),
    ("/v1/leases", b"[1, 2]", 422, "invalid_input", ()),
    ("/v1/apply", b'{"target": {"kind": "split", "n": 2, "demand": "1x3g.40gb"}}', 422,
     "invalid_input", ("demand", "Extra inputs")),
    ("/v1/apply", b'{"target": {"kind": "split", "n": 2}, "ttl": 1}', 422, "invalid_input",
     ("ttl", "Extra inputs")),
    ("/v1/apply", b'{"target": {"kind": "split", "n": -1}}', 422, "invalid_input", ("n:",)),
    ("/v1/apply", b"{}", 422, "invalid_input", ("target", "Field required")),
    ("/v1/apply", b'{"target": {"kind": "guess"}}', 422, "invalid_input", ("guess",)),
    ("/v1/apply", b'{"target": {"kind": "instances", "layouts": {"zero": {}}}}', 422,
     "invalid_input", ("layouts",)),
    ("/v1/apply", b'{"target": {"kind": "instances", "layouts": {"0": {"gis": '
     b'[{"profile": "1g.10gb", "placement": "x"}]}}}}', 422, "invalid_input", ("placement",)),
    ("/v1/mig-mode", b'{"gpus": "0"}', 422, "invalid_input", ("enabled", "Field required")),
    ("/v1/gpus/0/gpu-instances", b'{"profiles": "' + TOO_MANY + b'"}', 422, "invalid_input",
     ("more than 64",)),
    ("/v1/gpus/0/gpu-instances/destroy", b'{"ids": [-1]}', 422, "invalid_input", ("ids",)),
    ("/v1/tokens", b'{"name": "x", "role": "root"}', 422, "invalid_input", ("role",)),
]  # fmt: skip


@pytest.mark.parametrize(("path", "raw", "status", "kind", "words"), BAD_BODIES)
def test_malformed_bodies(  # noqa: PLR0917 - pytest passes parameters positionally
    root: httpx.Client,
    unchanged: None,
    path: str,
    raw: bytes,
    status: int,
    kind: str,
    words: tuple[str, ...],
) -> None:
    response = root.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, status, kind, *words)


LAYOUTS = [
    (instances({"0": {"gis": [{"profile": "9g.90gb"}]}}), "not_found", "9g.90gb"),
    (instances({"0": {"gis": [{"profile": "1g.10gb"}] * 8}}), "insufficient_resources", "1g.10gb"),
    (instances({"0": {"gis": [{"profile": "4g.40gb", "placement": "2:4"}]}}), "invalid_input", "2:4"),
    (instances({"3": {"gis": []}}), "not_supported", "GPU 3"),
    (split(1, gpus=[5]), "not_found", "GPU '5'"),
    ({"target": {"kind": "demand", "demand": "9x80GiB"}}, "insufficient_resources", ""),
    (instances({"0": {"gis": [{"profile": "3g.40gb", "cis": [{"profile": "4c"}]}]}}),
     "invalid_input", "4c"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "kind", "word"), LAYOUTS)
@pytest.mark.parametrize("route", ["/v1/apply", "/v1/plan", "/v1/check"])
def test_layouts_that_cannot_exist_are_refused_before_any_job(  # noqa: PLR0917
    root: httpx.Client, unchanged: None, route: str, body: dict[str, Any], kind: str, word: str
) -> None:
    """422 (the route exists; the body asks for what cannot be), with the error kind the node
    raised: a client raises the same class as ``LocalNode`` would."""
    assert_error(root.post(route, json=body), 422, kind, word)


def test_unknown_lease_profile_and_device(root: httpx.Client, unchanged: None) -> None:
    assert_error(
        root.post("/v1/leases", json={"profile": "5g.55gb"}), 422, "invalid_input", "5g.55gb"
    )
    assert_error(root.post("/v1/leases", json={"uuid": "MIG-nope"}), 404, "not_found", "MIG-nope")
    assert_error(root.get("/v1/leases/999999"), 404, "not_found", "999999")
    assert_error(root.delete("/v1/leases/MIG-nope"), 404, "not_found", "MIG-nope")
    assert_error(root.get("/v1/jobs/999999"), 404, "not_found", "999999")
    assert_error(root.delete("/v1/tokens/nobody-has-this"), 404, "not_found", "nobody-has-this")
    assert_error(root.get("/v1/no-such-route"), 404, "not_found", "/v1/no-such-route")
    assert_error(root.patch("/v1/leases"), 405, "usage", "Method Not Allowed")


def test_huge_bodies_get_413(root: httpx.Client, unchanged: None) -> None:
    huge = b'{"profile": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = root.post("/v1/leases", content=huge, headers={"Content-Type": "application/json"})
    assert_error(declared, 413, "invalid_input", "larger than 1048576 bytes")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    streamed = root.post(
        "/v1/leases", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "invalid_input", "larger than")
    # one typed body and one exit code, however the body came
    assert streamed.json() == declared.json()
    assert declared.json()["exit_code"] == 11
    assert declared.json()["context"] == {"max_bytes": 1048576}


def test_bad_queries_and_paths(root: httpx.Client, daemon: Daemon, unchanged: None) -> None:
    assert_error(root.get("/v1/audit?limit=0"), 422, "invalid_input", "limit")
    assert_error(root.get("/v1/jobs?status=bogus"), 422, "invalid_input", "status")
    assert_error(root.get("/v1/gpus/zero/profiles"), 404, "not_found", "'zero'")
    assert_error(root.get("/v1/export?format=yaml"), 400, "usage", "unknown format")
    assert_error(root.get("/v1/inventory?gpus=" + "0," * 3000), 422, "invalid_input", "gpus")
    assert_error(
        root.post("/v1/mig-mode", json={"gpus": "9", "enabled": False}), 404, "not_found", "'9'"
    )


def test_disabling_mig_mode_while_instances_exist_is_409_before_any_job(
    root: httpx.Client, unchanged: None
) -> None:
    refused = root.post("/v1/mig-mode", json={"gpus": "0", "enabled": False})
    assert_error(refused, 409, "in_use", "cannot disable MIG mode", "still exist")
    assert refused.json()["context"]["gpu_instances"]  # names them; no job was queued
