"""Soft requests that wait through a real daemon: ``--share P --wait T`` is served when shares
free up, from the same waiting queue as MIG requests (no thread per waiter), and gives up with
its reason when none do.

The daemon serves the simulated L40S node (no MIG); every MPS daemon started is ended after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from migctl.errors import InsufficientResourcesError, MigctlError
from migctl.leases import Lease
from migctl.node.open import connect, open_node
from migctl.schemas.leases import LeaseRequest
from tests.server.daemon import Daemon, running
from tests.unit.soft_nodes import end_daemons

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with running("l40s-node", extra_env={"MIGCTL_SIM_MPS_LIFETIME_S": "200"}) as started:
        try:
            yield started
        finally:
            with open_node(sim="l40s-node", sim_dir=started.sim_dir) as node:
                end_daemons(node)


def waiting_entries(daemon: Daemon) -> list[dict[str, Any]]:
    with daemon.client() as http:
        answer = http.get("/v1/dashboard")
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()["waiting"]
        return entries


Outcome = dict[str, Lease | MigctlError]


def acquire_in_background(
    daemon: Daemon, request: LeaseRequest
) -> tuple[threading.Thread, Outcome]:
    """Ask in a thread (its own connection); the lease or the error lands in the dict."""
    outcome: Outcome = {}

    def ask() -> None:
        with connect(socket=daemon.socket_path) as node:
            try:
                outcome["lease"] = node.acquire(request)
            except MigctlError as error:
                outcome["error"] = error

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread, outcome


def test_a_waiting_share_is_granted_when_a_share_is_released(daemon: Daemon) -> None:
    with connect(socket=daemon.socket_path) as node:
        held = node.acquire(LeaseRequest(share=60, parent="0", ttl_seconds=600))
        request = LeaseRequest(share=50, parent="0", wait_seconds=120, ttl_seconds=600)
        thread, outcome = acquire_in_background(daemon, request)
        deadline = time.monotonic() + 30
        while not [w for w in waiting_entries(daemon) if w["profile"] == "soft 50%"]:
            assert not outcome, outcome  # neither granted nor refused: it waits
            assert time.monotonic() < deadline, "the soft request never showed as waiting"
            time.sleep(0.1)
        ended = node.release(held.lease_id)
        thread.join(60)
        granted = outcome.get("lease")
        assert isinstance(granted, Lease), outcome
        try:
            assert granted.soft and granted.share_percent == 50
            assert granted.parent_uuid == held.parent_uuid
            assert ended.ended_at is not None and granted.created_at >= ended.ended_at
            assert waiting_entries(daemon) == []
        finally:
            node.release(granted.lease_id)


def test_a_waiting_share_gives_up_with_its_reason(daemon: Daemon) -> None:
    with connect(socket=daemon.socket_path) as node:
        held = node.acquire(LeaseRequest(share=60, parent="1", ttl_seconds=600))
        try:
            started = time.monotonic()
            with pytest.raises(InsufficientResourcesError) as refused:
                node.acquire(LeaseRequest(share=50, parent="1", wait_seconds=1.5))
            assert time.monotonic() - started >= 1.5  # it waited, then gave up
            message = refused.value.message
            assert "over 100%" in message and "gave up after waiting 1.5 s" in message
            assert "repartitioning is off" not in (refused.value.hint or "")
            at_once = time.monotonic()
            with pytest.raises(InsufficientResourcesError):  # without a wait: refused now
                node.acquire(LeaseRequest(share=50, parent="1"))
            assert time.monotonic() - at_once < 30
        finally:
            node.release(held.lease_id)
