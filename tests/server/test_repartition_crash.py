"""A daemon SIGKILLed in the middle of a reshape: the journal is repaired at the next start,
every lease is intact, and the waiting request is lost (its client sees the connection drop)
while the instance made for it is complete and free for the next request."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from migctl.engine.journal import Journal
from tests.server.conftest import apply_and_wait, split
from tests.server.daemon import Daemon, running
from tests.server.test_repartition import ON, by_start, in_background, jobs_of_kind, lease


@pytest.fixture
def fresh() -> Iterator[Daemon]:
    with running("h100-single", extra_args=ON) as daemon:
        yield daemon


@pytest.mark.parametrize("kill_at", [1, 8])
def test_a_daemon_killed_mid_reshape_repairs_the_journal_and_keeps_every_lease(
    fresh: Daemon, kill_at: int
) -> None:
    with fresh.client() as root:
        assert apply_and_wait(root, split(7))["status"] == "succeeded"
        before = by_start(root)
        kept = [lease(root, uuid=before[s]["uuid"], ttl_seconds=3600).json() for s in (4, 5)]
        leases_before = root.get("/v1/leases?history=true").json()
    control = fresh.sim()
    control.inject_fault("nvml@mutation", "KILL", skip=kill_at)

    def ask() -> httpx.Response:
        with fresh.client() as client:
            return lease(client, profile="3g.40gb", wait_seconds=60)

    thread, answers = in_background(ask)
    assert fresh.wait_exit() == -signal.SIGKILL  # killed by the simulator mid-reshape
    thread.join(timeout=30)
    control.clear_faults()
    assert isinstance(answers[0], httpx.TransportError)  # the waiting request is lost
    assert Journal("sim-h100-single", fresh.sim().files_dir).read() is not None
    fresh.start()
    with fresh.client() as root:
        assert Journal("sim-h100-single", fresh.sim().files_dir).read() is None
        assert root.get("/v1/leases?history=true").json() == leases_before
        after = by_start(root)
        # the leased 1g at 4 and 5 forced the 3g.40gb to 0-3; the repaired apply finished it
        assert {s: after[s] for s in (4, 5)} == {s: before[s] for s in (4, 5)}
        assert after[0]["profile"] == "3g.40gb" and sorted(after) == [0, 4, 5, 6]
        (job,) = jobs_of_kind(root, "repartition")
        assert job["status"] == "interrupted"
        (recovered,) = jobs_of_kind(root, "startup-recover")
        assert recovered["status"] == "succeeded"
        served = lease(root, profile="3g.40gb", wait_seconds=5)
        assert served.status_code == 201 and served.json()["uuid"] == after[0]["uuid"]
        assert len(jobs_of_kind(root, "repartition")) == 1  # served without another reshape
        for held in kept:
            assert root.get(f"/v1/leases/{held['lease_id']}").json()["active"]
