"""Soft devices through a real daemon: a RemoteNode leases an MPS share, a second user is refused.

Needs root for the second user (a forked child that setuid's to ``daemon``, uid 1, as the other
peer-credential tests do).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.mps.control import DaemonStatus
from migctl.node.open import connect, open_node
from migctl.schemas.leases import LeaseRequest
from migctl.tenancy.environment import lease_environment
from tests.cli.conftest import migctl
from tests.server.daemon import Daemon, as_user, running
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


def test_a_remote_node_leases_a_soft_device(daemon: Daemon) -> None:
    with connect(socket=daemon.socket_path) as node:
        lease = node.acquire(LeaseRequest(share=25, parent="1", ttl_seconds=600))
        assert lease.soft and lease.share_percent == 25 and lease.pipe_dir
        with open_node(sim="l40s-node", sim_dir=daemon.sim_dir) as local:
            parent = local.backend.gpu(1)
            control = local.mps.control(parent.uuid)
            assert control.state().status is DaemonStatus.RUNNING
        assert lease.parent_uuid == parent.uuid
        env = lease_environment(lease)
        assert env["CUDA_VISIBLE_DEVICES"] == parent.uuid
        assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={parent.memory_total_mib // 4}M"
        assert env["CUDA_MPS_PIPE_DIRECTORY"] == str(control.paths.pipe_dir)
        (listed,) = node.leases()
        assert listed.soft and listed.parent_uuid == parent.uuid
        ended = node.release(lease.lease_id)
        assert not ended.active
        assert control.state().status is DaemonStatus.STOPPED  # the last one: idle, stopped


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second Unix user")
def test_a_second_unix_user_is_refused_on_a_shared_gpu(daemon: Daemon) -> None:
    with connect(socket=daemon.socket_path) as node:
        mine = node.acquire(LeaseRequest(share=25, parent="2"))
        try:
            body = {"share": 25, "parent": "2"}
            status, answer = as_user(1, 1, daemon.socket_path, "POST", "/v1/leases", body=body)
            assert status == 409, answer
            assert "one Unix user at a time" in answer["message"]
            body["allow_other_user"] = True
            status, answer = as_user(1, 1, daemon.socket_path, "POST", "/v1/leases", body=body)
            assert status == 201, answer
            assert any("take turns" in note for note in answer["notes"])
            assert answer["kind"] == "soft" and answer["isolation"] == "soft"
            with daemon.client() as root:
                assert root.delete(f"/v1/leases/{answer['lease_id']}").status_code == 200
        finally:
            node.release(mine.lease_id)


def test_a_soft_lease_outlives_a_daemon_restart(daemon: Daemon) -> None:
    with connect(socket=daemon.socket_path) as node:
        lease = node.acquire(LeaseRequest(share=25, parent="3", ttl_seconds=600))
    daemon.stop()
    daemon.start()  # at start the daemon ends leases whose device is gone: not this one
    with connect(socket=daemon.socket_path) as node:
        (kept,) = [x for x in node.leases() if x.lease_id == lease.lease_id]
        assert kept.active and kept.soft
        node.release(lease.lease_id)


def test_docker_args_of_a_soft_lease_through_the_daemon(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads the lease from the daemon: the flags name the parent daemon's pipes."""
    monkeypatch.setenv("MIGCTL_URL", f"unix://{daemon.socket_path}")
    monkeypatch.delenv("MIGCTL_SIM", raising=False)
    with connect(socket=daemon.socket_path) as node:
        lease = node.acquire(LeaseRequest(share=30, parent="0", ttl_seconds=600))
        try:
            shown = migctl(capsys, "-o", "json", "docker-args", "--lease", str(lease.lease_id))
            assert shown.code == 0, shown.err
            flags = shown.json()["argv"]["cdi"]
            pipe = lease.pipe_dir
            assert flags[:2] == ["--device", f"nvidia.com/gpu={lease.parent_uuid}"]
            assert "--ipc=host" in flags and f"{pipe}:{pipe}" in flags
            assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30" in flags
            assert flags[-2:] == ["--user", str(os.geteuid())]
        finally:
            node.release(lease.lease_id)


def test_the_dashboard_and_metrics_show_a_soft_device_with_its_isolation(
    daemon: Daemon,
) -> None:
    with connect(socket=daemon.socket_path) as node:
        lease = node.acquire(LeaseRequest(share=50, parent="0", ttl_seconds=600, job="notebook"))
        try:
            with daemon.client() as root:
                feed = root.get("/v1/dashboard").json()
                metrics = root.get("/metrics").text
        finally:
            node.release(lease.lease_id)
    (soft,) = feed["soft_devices"]
    assert soft["uuid"] == lease.uuid and soft["isolation"] == "soft"
    assert soft["share_percent"] == 50 and soft["lease"]["job"] == "notebook"
    assert f'uuid="{lease.uuid}"' in metrics and 'isolation="soft"' in metrics
    page = Path(__file__).resolve().parents[2] / "src/migctl/server/static/dashboard.html"
    assert "no fault isolation" in page.read_text()  # the page says it beside the table
