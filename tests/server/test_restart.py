"""Restarts lose nothing: leases survive, a reboot's wiped layout comes back, a crash mid-apply
(SIGKILL from the simulator's fault injection) is repaired at the next start."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from migctl.engine.journal import Journal
from tests.server.conftest import apply_and_wait, instances, split
from tests.server.daemon import Daemon, running

BUSY_FIRST = {"0": {"gis": [{"profile": "1g.10gb", "placement": "6:1"}, {"profile": "4g.40gb"}]}}
SEVEN = {"0": {"gis": [{"profile": "1g.10gb"} for _ in range(7)]}}


@pytest.fixture
def fresh() -> Iterator[Daemon]:
    with running("h100-single") as daemon:
        yield daemon


def devices(client: httpx.Client) -> dict[str, str]:
    """MIG device uuid -> GI profile@placement."""
    gpu = client.get("/v1/inventory").json()["gpus"][0]
    return {
        d["uuid"]: f"{i['profile']}@{i['placement']['start']}"
        for i in gpu["gpu_instances"]
        for d in i["mig_devices"]
    }


def profiles(client: httpx.Client) -> list[str]:
    return sorted(devices(client).values())


def lease(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/leases", json=body)
    assert response.status_code == 201, response.text
    granted: dict[str, Any] = response.json()
    return granted


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_leases_survive_a_restart(fresh: Daemon, stop: str) -> None:
    with fresh.client() as root:
        assert apply_and_wait(root, split(7))["status"] == "succeeded"
        held = lease(root, profile="1g.10gb", job="long", ttl_seconds=3600)
        before = root.get("/v1/leases").json()
    code = fresh.stop() if stop == "SIGTERM" else fresh.kill()
    assert code == (0 if stop == "SIGTERM" else -signal.SIGKILL)
    assert not fresh.socket_path.exists() or stop == "SIGKILL"
    fresh.start()  # a stale socket left by SIGKILL is replaced
    with fresh.client() as root:
        assert root.get("/v1/leases").json() == before
        assert held["uuid"] in devices(root)
        taken = root.post("/v1/leases", json={"uuid": held["uuid"]})
        assert taken.status_code == 409


def test_after_a_reboot_the_desired_layout_comes_back_and_dead_leases_end(fresh: Daemon) -> None:
    with fresh.client() as root:
        assert apply_and_wait(root, instances(BUSY_FIRST))["status"] == "succeeded"
        old = lease(root, profile="4g.40gb")
        assert profiles(root) == ["1g.10gb@6", "4g.40gb@0"]
    fresh.stop()
    control = fresh.sim()
    control.reboot()
    assert control.state().gpus[0].gis == []
    fresh.start()
    with fresh.client() as root:
        assert profiles(root) == ["1g.10gb@6", "4g.40gb@0"]
        assert old["uuid"] not in devices(root)  # new instances, new MIG device uuids
        ended = root.get(f"/v1/leases/{old['lease_id']}").json()
        assert not ended["active"] and ended["end_reason"] == "revoked"
        assert ended["ended_by"] == "migctl-daemon: device no longer exists"
        startup = root.get("/v1/status").json()["startup"]
        assert any("re-applied the desired layout" in note for note in startup)
        assert any(
            f"ended 1 lease(s) whose device no longer exists: {old['lease_id']}" in n
            for n in startup
        )
        jobs = root.get("/v1/jobs").json()
        assert jobs[0]["kind"] == "startup-reapply" and jobs[0]["status"] == "succeeded"
        audit = root.get("/v1/audit?actor=migctl-daemon").json()
        gone = next(e for e in audit if e["action"] == "end lease: device gone")
        assert (
            gone["target"] == f"lease {old['lease_id']}"
            and "no longer exists" in gone["detail"]["reason"]
        )
        assert lease(root, profile="4g.40gb")["uuid"] in devices(root)


@pytest.mark.parametrize("kill_at", [1, 8])
def test_a_daemon_killed_mid_apply_is_repaired_at_the_next_start(
    fresh: Daemon, kill_at: int
) -> None:
    with fresh.client() as root:
        assert apply_and_wait(root, instances(BUSY_FIRST))["status"] == "succeeded"
        busy = lease(root, profile="1g.10gb", job="keep-me")
        other = lease(root, profile="4g.40gb", ttl_seconds=3600)
        root.delete(f"/v1/leases/{other['lease_id']}")  # free the 4g so SEVEN may replace it
        leases_before = root.get("/v1/leases?history=true").json()
        control = fresh.sim()
        control.inject_fault("nvml@mutation", "KILL", skip=kill_at)
        job = root.post("/v1/apply", json=instances(SEVEN)).json()
    assert fresh.wait_exit() == -signal.SIGKILL  # the simulator killed the daemon mid-apply
    control.clear_faults()
    assert Journal("sim-h100-single", fresh.sim().files_dir).read() is not None
    fresh.start()
    with fresh.client() as root:
        assert Journal("sim-h100-single", fresh.sim().files_dir).read() is None
        assert profiles(root) == [f"1g.10gb@{start}" for start in range(7)]
        assert busy["uuid"] in devices(root)  # the leased instance was never touched
        assert root.get("/v1/leases?history=true").json() == leases_before
        interrupted = root.get(f"/v1/jobs/{job['job_id']}").json()
        assert interrupted["status"] == "interrupted"
        recovered = next(j for j in root.get("/v1/jobs").json() if j["kind"] == "startup-recover")
        assert recovered["status"] == "succeeded" and f"after {kill_at} of" in recovered["message"]
        desired = root.get("/v1/layout").json()["gpus"][0]
        assert desired["updated_by"] == "migctl-daemon" and len(desired["layout"]["gis"]) == 7
        assert apply_and_wait(root, instances(SEVEN))["message"].startswith("the machine already")
