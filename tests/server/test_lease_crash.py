"""A lease granted just before the daemon dies does not outlive its undelivered answer.

The daemon kills itself (``MIGCTL_TEST_CRASH_AT``) right after the lease's commit, so its
client never gets the answer: at the next start the lease is ended at once when it was listed as
unconfirmed, or ends by its short provisional TTL when the crash came before the listing. A lease
whose answer was delivered keeps the TTL its client asked for (none) across a crash.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import apply_and_wait, split
from tests.server.daemon import Daemon, running


@pytest.fixture
def crashing() -> Iterator[Daemon]:
    env = {"MIGCTL_PROVISIONAL_LEASE_SECONDS": "3"}
    with running("h100-single", extra_env=env) as daemon:
        with daemon.client() as root:
            assert apply_and_wait(root, split(7))["status"] == "succeeded"
        yield daemon


def crash_at_grant(daemon: Daemon, point: str, window_s: float) -> None:
    """Restart the daemon set to die at ``point``, ask for a lease, see it die; start again."""
    daemon.stop()
    daemon.extra_env["MIGCTL_TEST_CRASH_AT"] = point
    daemon.extra_env["MIGCTL_PROVISIONAL_LEASE_SECONDS"] = str(window_s)
    daemon.start()
    with daemon.client() as client, pytest.raises(httpx.TransportError):
        client.post("/v1/leases", json={"profile": "1g.10gb", "job": "lost"})
    assert daemon.wait_exit() == -signal.SIGKILL
    del daemon.extra_env["MIGCTL_TEST_CRASH_AT"]
    daemon.start()


def the_lost_lease(root: httpx.Client) -> dict[str, Any]:
    (lease,) = [x for x in root.get("/v1/leases?history=true").json() if x["job"] == "lost"]
    found: dict[str, Any] = lease
    return found


def test_a_lease_listed_but_never_delivered_ends_at_the_next_start(crashing: Daemon) -> None:
    crash_at_grant(crashing, "lease-listed", window_s=600)  # ended at start, not by its TTL
    with crashing.client() as root:
        lost = the_lost_lease(root)
        assert not lost["active"] and lost["end_reason"] == "revoked"
        assert lost["ended_by"].startswith("migctl-daemon: granted as the daemon stopped")
        assert root.get("/v1/leases").json() == []
        again = root.post("/v1/leases", json={"uuid": lost["uuid"]})
        assert again.status_code == 201, again.text  # free for whoever asks next
        notes = root.get("/v1/status").json()["startup"]
        assert any("never delivered" in note for note in notes), notes
        audit = root.get("/v1/audit?actor=migctl-daemon").json()
        row = next(e for e in audit if e["action"] == "end lease: never delivered")
        assert row["target"] == f"lease {lost['lease_id']}"


def test_a_lease_committed_but_not_yet_listed_ends_by_its_short_ttl(crashing: Daemon) -> None:
    crash_at_grant(crashing, "lease-committed", window_s=3)
    with crashing.client() as root:
        lost = the_lost_lease(root)
        assert lost["expires_at"] is not None
        assert lost["expires_at"] - lost["created_at"] == pytest.approx(3.0)
        deadline = time.monotonic() + 10
        while the_lost_lease(root)["active"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert the_lost_lease(root)["end_reason"] == "expired"
        assert root.post("/v1/leases", json={"uuid": lost["uuid"]}).status_code == 201


def test_a_delivered_lease_keeps_what_was_asked_across_a_crash(crashing: Daemon) -> None:
    with crashing.client() as root:
        forever = root.post("/v1/leases", json={"profile": "1g.10gb"}).json()
        hour = root.post("/v1/leases", json={"profile": "1g.10gb", "ttl_seconds": 3600}).json()
        assert (forever["ttl_seconds"], forever["expires_at"]) == (None, None)
        assert hour["expires_at"] == pytest.approx(hour["created_at"] + 3600)
        deadline = time.monotonic() + 10
        while root.get(f"/v1/leases/{forever['lease_id']}").json()["expires_at"] is not None:
            assert time.monotonic() < deadline  # confirmed right after the answer
            time.sleep(0.05)
    crashing.kill()
    crashing.start()
    time.sleep(4)  # longer than the provisional TTL
    with crashing.client() as root:
        for lease in (forever, hour):
            now = root.get(f"/v1/leases/{lease['lease_id']}").json()
            assert now["active"] and now["expires_at"] == lease["expires_at"]
