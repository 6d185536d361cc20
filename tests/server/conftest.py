"""Fixtures for the daemon tests: one running daemon for the session, tokens, a clean slate.

The shared daemon serves a simulated H100 split into 7 x 1g.10gb, with ``--admin-group nogroup``
so that (when the tests run as root) a process running as ``nobody`` (gid nogroup) is an admin
on the socket and one running as ``daemon`` (uid 1) is a plain user. :func:`split`,
:func:`instances` and :func:`layout` write the bodies of ``POST /v1/plan``, ``/v1/check`` and
``/v1/apply`` (``migctl.schemas.layouts.PlanRequest``: a target and the GPUs it is narrowed to).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.daemon import Daemon, running


def split(n: int, *, gpus: list[int] | None = None) -> dict[str, Any]:
    """A plan/apply body: ``n`` equal instances on each GPU (of ``gpus``)."""
    return _narrowed({"kind": "split", "n": n}, gpus)


def instances(layouts: dict[str, Any]) -> dict[str, Any]:
    """A plan/apply body: explicit layouts by GPU index (``{"0": {"gis": [...]}}``)."""
    return {"target": {"kind": "instances", "layouts": layouts}}


def layout(
    text: str, config: str | None = None, *, gpus: list[int] | None = None
) -> dict[str, Any]:
    """A plan/apply body: a layout file's text (and which named layout in it)."""
    target = {"kind": "layout", "text": text, **({"config": config} if config else {})}
    return _narrowed(target, gpus)


def _narrowed(target: dict[str, Any], gpus: list[int] | None) -> dict[str, Any]:
    return {"target": target, **({"gpus": gpus} if gpus is not None else {})}


def wait_job(client: httpx.Client, job_id: int, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "interrupted"}:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def apply_and_wait(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/apply", json=body)
    assert response.status_code == 202, response.text
    return wait_job(client, response.json()["job_id"])


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    with running("h100-single", admin_group="nogroup") as started:
        with started.client() as root:
            job = apply_and_wait(root, split(7))
            assert job["status"] == "succeeded", job
        yield started


@pytest.fixture(scope="session")
def tokens(daemon: Daemon) -> dict[str, str]:
    """User tokens for alice and bob, an admin token for ops (created through the API)."""
    made = {}
    with daemon.client() as root:
        for name, role in (("alice", "user"), ("bob", "user"), ("ops", "admin")):
            response = root.post("/v1/tokens", json={"name": name, "role": role})
            assert response.status_code == 201, response.text
            made[name] = response.json()["token"]
    return made


@pytest.fixture
def root(daemon: Daemon) -> Iterator[httpx.Client]:
    """An admin client on the socket (this process), that ends every lease afterwards."""
    with daemon.client() as client:
        yield client
        for lease in client.get("/v1/leases").json():
            client.delete(f"/v1/leases/{lease['lease_id']}")
