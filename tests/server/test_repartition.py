"""Demand-driven repartitioning in a real daemon on a simulated H100 split 7 x 1g.10gb.

Each test starts its own ``migctl serve`` (the policy is a start-up option). The GPU has
3g.40gb placements only at slices 0-3 and 4-7, so which 1g instances a reshape must destroy
follows from which ones are leased or busy: the tests derive the expected survivors from that.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bench.service_load import LoadSpec, check, run_clients
from tests.server.conftest import apply_and_wait, split
from tests.server.daemon import Daemon

MIB_35_GIB = 35 * 1024
ON = ("--repartition", "on", "--min-idle-seconds", "0")


@pytest.fixture
def start() -> Iterator[Callable[..., Daemon]]:
    """Start a fresh daemon with extra options, split 7 x 1g.10gb; cleaned up afterwards."""
    started: list[Daemon] = []

    def launch(*options: str) -> Daemon:
        daemon = Daemon("h100-single", extra_args=options)
        started.append(daemon)
        daemon.start()
        with daemon.client() as root:
            assert apply_and_wait(root, split(7))["status"] == "succeeded"
        return daemon

    try:
        yield launch
    except BaseException:
        for daemon in started:
            print(daemon.log())
        raise
    finally:
        for daemon in started:
            daemon.cleanup()


def by_start(client: httpx.Client) -> dict[int, dict[str, str]]:
    """GI start slice -> {uuid, profile} of its MIG device (one CI per GI here)."""
    gpu = client.get("/v1/inventory").json()["gpus"][0]
    return {
        gi["placement"]["start"]: {"uuid": d["uuid"], "profile": gi["profile"]}
        for gi in gpu["gpu_instances"]
        for d in gi["mig_devices"]
    }


def lease(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/leases", json=body)


def token(client: httpx.Client, name: str) -> str:
    response = client.post("/v1/tokens", json={"name": name, "role": "user"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def jobs_of_kind(client: httpx.Client, kind: str) -> list[dict[str, Any]]:
    return [job for job in client.get("/v1/jobs").json() if job["kind"] == kind]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    """Run a blocking request on a thread; the list gets its response (or its exception)."""
    answers: list[Any] = []

    def run() -> None:
        try:
            answers.append(call())
        except httpx.HTTPError as error:
            answers.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answers


def test_idle_slices_are_reshaped_for_a_waiting_request_and_busy_ones_survive(
    start: Callable[..., Daemon],
) -> None:
    daemon = start(*ON)
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        with daemon.client() as root:
            before = by_start(root)
            for slot in (0, 1):  # leased: never destroyed
                assert lease(root, uuid=before[slot]["uuid"], job="keep").status_code == 201
            daemon.sim().attach(sleeper.pid, 0, before[2]["uuid"], memory_mib=100)  # busy
            with daemon.tcp(token(root, "alice")) as alice:
                answer = lease(alice, memory_mib=MIB_35_GIB, wait_seconds=30, job="big")
            assert answer.status_code == 201, answer.text
            granted = answer.json()
            after = by_start(root)
            jobs = jobs_of_kind(root, "repartition")
            audit = root.get("/v1/audit?actor=migctl-daemon").json()
            metrics = root.get("/metrics").text
    finally:
        sleeper.kill()
        sleeper.wait()
    # slices 0-3 hold leased/busy instances, so the 3g.40gb can only go at 4-7
    assert granted["user"] == "alice" and granted["profile"] == "3g.40gb"
    assert after[4] == {"uuid": granted["uuid"], "profile": "3g.40gb"}
    assert {s: after[s] for s in (0, 1, 2, 3)} == {s: before[s] for s in (0, 1, 2, 3)}
    assert sorted(after) == [0, 1, 2, 3, 4]  # only the idle 1g at 4, 5, 6 were destroyed
    (job,) = jobs
    assert job["status"] == "succeeded" and job["requested_by"] == "migctl-daemon"
    assert job["request"]["destroyed_gi_ids"] and job["request"]["grants"][0]["user"] == "alice"
    assert f"lease {granted['lease_id']}" in job["message"]
    entry = next(e for e in audit if e["action"] == "repartition")
    assert entry["target"] == "GPU 0" and entry["result"] == "ok"
    assert entry["detail"]["leases"] == {
        job["request"]["grants"][0]["request"]: granted["lease_id"]
    }
    assert 'migctl_repartitions_total{result="succeeded"} 1.0' in metrics


def test_with_repartitioning_off_a_request_times_out_and_nothing_changes(
    start: Callable[..., Daemon],
) -> None:
    daemon = start()
    with daemon.client() as root:
        before = by_start(root)
        answer = lease(root, profile="3g.40gb", wait_seconds=1.5)
        assert answer.status_code == 409
        error = answer.json()
        assert error["error"] == "insufficient_resources"
        assert "gave up after waiting 1.5 s" in error["message"]
        assert "repartitioning is off" in error["hint"]
        assert by_start(root) == before
        assert not jobs_of_kind(root, "repartition")
        assert root.get("/v1/status").json()["repartition"]["mode"] == "off"


def test_the_hourly_budget_stops_a_second_reshape_even_after_a_restart(
    start: Callable[..., Daemon],
) -> None:
    daemon = start(*ON, "--max-reconfig-per-hour", "1")
    with daemon.client() as root:
        assert lease(root, profile="3g.40gb", wait_seconds=30).status_code == 201
        shaped = by_start(root)

        def second() -> httpx.Response:
            with daemon.client() as client:
                return lease(client, profile="3g.40gb", wait_seconds=4)

        thread, answers = in_background(second)
        waiting = wait_until(
            lambda: [w for w in root.get("/v1/dashboard").json()["waiting"] if w["reason"]],
            "the second request to wait with a reason",
        )
        thread.join(timeout=30)
        status = root.get("/v1/status").json()["repartition"]
    assert waiting[0]["reason"] == "budget" and "budget is spent" in waiting[0]["detail"]
    (answer,) = answers
    assert answer.status_code == 409
    assert answer.json()["context"]["reason"] == "budget"
    assert status["budget_left"] == 0 and status["reshapes_last_hour"] == 1
    daemon.stop()
    daemon.start()  # the budget is counted from the jobs table: a restart does not reset it
    with daemon.client() as root:
        again = lease(root, profile="3g.40gb", wait_seconds=1.5)
        assert again.status_code == 409 and again.json()["context"]["reason"] == "budget"
        assert by_start(root) == shaped
        assert len(jobs_of_kind(root, "repartition")) == 1


def test_instances_idle_for_less_than_the_minimum_are_not_reshaped(
    start: Callable[..., Daemon],
) -> None:
    daemon = start("--repartition", "on", "--min-idle-seconds", "3600")
    with daemon.client() as root:
        before = by_start(root)
        answer = lease(root, profile="3g.40gb", wait_seconds=1.5)
        assert answer.status_code == 409
        error = answer.json()
        assert error["context"]["reason"] == "min_idle"
        assert "younger than 3600 s" in error["message"]
        assert by_start(root) == before
        assert not jobs_of_kind(root, "repartition")


def test_a_high_priority_request_is_served_before_an_earlier_low_one(
    start: Callable[..., Daemon],
) -> None:
    daemon = start(*ON)
    with daemon.client() as root:
        held = [lease(root, profile="1g.10gb", ttl_seconds=600).json() for _ in range(7)]
        tokens = {name: token(root, name) for name in ("alice", "bob")}
        with daemon.tcp(tokens["alice"]) as alice:
            refused = lease(alice, profile="1g.10gb", priority=11)
        assert refused.status_code == 403 and "the most a user" in refused.json()["message"]

        def ask(name: str, priority: int) -> httpx.Response:
            with daemon.tcp(tokens[name]) as client:
                body = {"profile": "1g.10gb", "priority": priority, "wait_seconds": 30}
                return lease(client, **body)

        def queue() -> list[dict[str, Any]]:
            return list(root.get("/v1/dashboard").json()["waiting"])

        low, low_answer = in_background(lambda: ask("alice", 0))
        wait_until(lambda: len(queue()) == 1, "alice to wait")
        high, high_answer = in_background(lambda: ask("bob", 5))
        waiting = wait_until(lambda: len(w := queue()) == 2 and w, "bob to wait")
        assert {(w["user"], w["priority"]) for w in waiting} == {("bob", 5), ("alice", 0)}

        def served_order() -> list[tuple[str, int]]:
            return [(w["user"], w["priority"]) for w in queue()]

        # a newcomer is listed last until the repartitioner's next pass ranks it
        wait_until(lambda: served_order() == [("bob", 5), ("alice", 0)], "bob ranked first")
        root.delete(f"/v1/leases/{held[0]['lease_id']}")
        high.join(timeout=30)
        assert high_answer[0].status_code == 201
        assert high_answer[0].json()["uuid"] == held[0]["uuid"]
        assert [w["user"] for w in queue()] == ["alice"]
        root.delete(f"/v1/leases/{held[1]['lease_id']}")
        low.join(timeout=30)
        assert low_answer[0].status_code == 201
        assert low_answer[0].json()["uuid"] == held[1]["uuid"]
        assert not jobs_of_kind(root, "repartition")


def test_twenty_clients_share_the_devices_safely_through_the_repartitioner(
    start: Callable[..., Daemon],
) -> None:
    """The load check of ``test_load`` with repartitioning on: every waiting request goes
    through the repartitioner's queue; no device is granted twice, no lease is lost."""
    daemon = start(*ON)
    spec = LoadSpec(
        clients=20, duration_s=3.0, hold_ms=10.0, wait_s=60.0, tag=f"t{uuid.uuid4().hex[:8]}"
    )
    log = asyncio.run(run_clients(daemon.socket_path, spec, range(spec.clients)))
    checks = check(log, daemon.lease_db, spec.tag)
    assert log.errors == []
    assert checks["grants"] > spec.clients
    assert checks["double_grants_clients"] == 0 and checks["double_grants_store"] == 0
    assert checks["still_active"] == 0 and checks["not_released"] == 0
    assert checks["unseen_by_clients"] == 0 and checks["missing_in_store"] == 0
    with daemon.client() as root:
        assert not jobs_of_kind(root, "repartition")  # any device: the 1g.10gb already fit
        assert root.get("/v1/status").json()["repartition"]["waiting"] == 0


def test_on_a_dgx_the_reshape_happens_on_the_gpu_with_idle_slices() -> None:
    """8 x H100 with MIG on GPUs 0 and 1 only: every device of GPU 0 leased, so the 3g.40gb
    can only be cut from GPU 1's idle slices; GPU 0 and the GPUs without MIG are untouched."""
    daemon = Daemon("dgx-h100", extra_args=ON)
    try:
        daemon.start()
        with daemon.client() as root:
            job = apply_and_wait(root, split(7, gpus=[0, 1]))
            assert job["status"] == "succeeded", job
            before = root.get("/v1/inventory").json()["gpus"]
            for _ in range(7):
                assert lease(root, profile="1g.10gb").json()["gpu_index"] == 0
            answer = lease(root, profile="3g.40gb", wait_seconds=30)
            assert answer.status_code == 201, answer.text
            after = root.get("/v1/inventory").json()["gpus"]
    except BaseException:
        print(daemon.log())
        raise
    finally:
        daemon.cleanup()
    assert answer.json()["gpu_index"] == 1
    gis_before = [g["gpu_instances"] for g in before]
    gis_after = [g["gpu_instances"] for g in after]
    assert [len(g) for g in gis_after] == [7, 5, 0, 0, 0, 0, 0, 0]
    uuids = [
        [d["uuid"] for i in gis[0] for d in i["mig_devices"]] for gis in (gis_before, gis_after)
    ]
    assert uuids[0] == uuids[1]  # the leased GPU 0 is untouched
    assert sorted(i["profile"] for i in gis_after[1]) == ["1g.10gb"] * 4 + ["3g.40gb"]
