"""Soft devices through a LocalNode on the simulator: the rules, the MPS daemon, the clients.

Real processes throughout: each parent's MPS control daemon is the simulated
``nvidia-cuda-mps-control`` and each client the simulated CUDA program, both started with the
environment a soft lease gives.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.errors import InsufficientResourcesError, InUseError, NotFoundError, UsageError
from migctl.leases import EndReason, Lease, LeaseOwner
from migctl.mps.control import DaemonStatus
from migctl.node.local import LocalNode
from migctl.schemas.layouts import SplitTarget
from migctl.schemas.leases import LeaseRequest
from migctl.tenancy.environment import lease_environment, shell_exports
from migctl.tenancy.runner import run_with
from tests.unit.mps_programs import BASE_ENV, SIM_CLIENT, Clients, events, wait_event
from tests.unit.soft_nodes import soft_node

pytestmark = pytest.mark.timeout(180)
NOBODY = LeaseOwner(user="nobody", uid=65534, host=os.uname().nodename)


@pytest.fixture
def l40s(sim_dir: Path) -> Iterator[LocalNode]:
    with soft_node("l40s-node", sim_dir) as node:
        yield node


@pytest.fixture
def h100(sim_dir: Path) -> Iterator[LocalNode]:
    with soft_node("h100-single", sim_dir) as node:
        node.set_mode([0], enabled=True)
        node.apply(SplitTarget(n=2), gpus=[0])
        yield node


@pytest.fixture
def clients() -> Iterator[Clients]:
    started = Clients()
    yield started
    started.close()


def test_a_share_of_a_gpu_without_mig(l40s: LocalNode, clients: Clients) -> None:
    gpu0 = l40s.backend.gpu(0)
    lease = l40s.acquire(LeaseRequest(share=25))
    assert lease.soft and lease.parent_uuid == gpu0.uuid and lease.gpu_index == 0
    assert lease.memory_limit_mib == gpu0.memory_total_mib * 25 // 100
    env = lease_environment(lease)
    assert env["CUDA_VISIBLE_DEVICES"] == env["NVIDIA_VISIBLE_DEVICES"] == gpu0.uuid
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={lease.memory_limit_mib}M"
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == lease.pipe_dir
    assert env["MIGCTL_LEASE_ID"] == str(lease.lease_id)
    control = l40s.mps.control(gpu0.uuid)
    assert control.state().status is DaemonStatus.RUNNING
    assert Path(lease.pipe_dir or "").parent.parent == l40s.settings.state_dir / "mps"
    client = clients.start(env, "--hold-s", "30", "--alloc-mib", "512")
    control.wait_attached(client.pid)
    attached = wait_event(client, "attached")
    assert (attached["percent"], attached["limit_mib"]) == (25.0, lease.memory_limit_mib)
    wait_event(client, "alloc")
    inventory = l40s.inventory()
    (shown,) = [p for p in inventory.gpu(0).processes if p.pid == client.pid]  # type: ignore[union-attr]
    assert shown.used_memory_mib == 512
    (soft,) = inventory.soft
    assert (soft.uuid, soft.parent_uuid, soft.percent, soft.isolation) == (
        lease.uuid,
        gpu0.uuid,
        25,
        "soft",
    )
    assert soft.lease is not None and soft.lease.lease_id == lease.lease_id
    assert soft.server == "running" and not soft.from_layout
    assert 'isolation="soft"' in l40s.metrics()


def test_the_last_release_stops_the_idle_daemon(l40s: LocalNode, clients: Clients) -> None:
    first = l40s.acquire(LeaseRequest(share=25, parent="1"))
    second = l40s.acquire(LeaseRequest(share=25, parent="1"))
    control = l40s.mps.control(first.parent_uuid or "")
    l40s.release(first.lease_id)
    assert control.state().status is DaemonStatus.RUNNING  # the second share needs it
    l40s.release(second.lease_id)
    assert control.state().status is DaemonStatus.STOPPED
    assert l40s.inventory().soft == []


def test_a_share_of_a_mig_device(h100: LocalNode, clients: Clients) -> None:
    devices = h100.backend.mig_devices(0)
    assert len(devices) == 2
    lease = h100.acquire(LeaseRequest(share=50))
    assert lease.parent_uuid == devices[0].uuid  # the first that admits it
    assert (lease.gi_id, lease.ci_id) == (devices[0].gi_id, devices[0].ci_id)
    assert lease.memory_limit_mib == devices[0].memory_total_mib // 2
    named = h100.acquire(LeaseRequest(share=25, parent=devices[1].uuid, memory_mib=4096))
    assert named.parent_uuid == devices[1].uuid and named.memory_limit_mib == 4096
    client = clients.start(lease_environment(named), "--hold-s", "20")
    assert wait_event(client, "attached")["limit_mib"] == 4096
    shown = [p.pid for p in h100.backend.mig_devices(0)[1].processes]
    assert shown == [client.pid]  # a process of that MIG device, as NVML shows MPS clients
    with pytest.raises(UsageError, match="MIG mode") as caught:
        h100.acquire(LeaseRequest(share=25, parent="0"))
    assert devices[0].uuid in (caught.value.hint or "")
    with pytest.raises(NotFoundError):
        h100.acquire(LeaseRequest(share=25, parent="MIG-00000000-0000-0000-0000-000000000000"))


def test_a_mig_device_shared_out_is_not_leased_whole(h100: LocalNode) -> None:
    devices = h100.backend.mig_devices(0)
    h100.acquire(LeaseRequest(share=50, parent=devices[0].uuid))
    with pytest.raises(InUseError):
        h100.acquire(LeaseRequest(uuid=devices[0].uuid))
    assert h100.acquire(LeaseRequest()).uuid == devices[1].uuid
    with pytest.raises(InUseError, match="leased whole"):
        h100.acquire(LeaseRequest(share=25, parent=devices[1].uuid))


def test_sm_shares_past_100_need_oversubscribe(l40s: LocalNode) -> None:
    l40s.acquire(LeaseRequest(share=60, parent="0"))
    with pytest.raises(InsufficientResourcesError, match="sum to 110%") as caught:
        l40s.acquire(LeaseRequest(share=50, parent="0"))
    assert "at most 40%" in (caught.value.hint or "")
    assert len(l40s.leases()) == 1  # refused: nothing changed
    over = l40s.acquire(LeaseRequest(share=50, parent="0", oversubscribe=True, memory_mib=1024))
    assert any("oversubscribed" in note for note in over.notes)
    unnamed = l40s.acquire(LeaseRequest(share=50))  # not named: the next GPU admits it
    assert unnamed.parent_uuid == l40s.backend.gpu(1).uuid


def test_memory_is_hard(l40s: LocalNode, clients: Clients) -> None:
    total = l40s.backend.gpu(0).memory_total_mib
    with pytest.raises(InsufficientResourcesError, match="does not fit"):
        l40s.acquire(LeaseRequest(share=10, parent="0", memory_mib=total + 1))
    with pytest.raises(InsufficientResourcesError, match="does not fit"):
        l40s.acquire(LeaseRequest(share=10, parent="0", memory_mib=total + 1, oversubscribe=True))
    lease = l40s.acquire(LeaseRequest(share=10, parent="0", memory_mib=1000))
    greedy = clients.start(lease_environment(lease), "--alloc-mib", "900", "--alloc-mib", "200")
    assert greedy.wait(timeout=30) == 5  # past its pinned limit
    assert "pinned limit 1000 MiB" in events(greedy)[-1]["detail"]


def test_a_second_unix_user_is_refused_unless_allowed(l40s: LocalNode) -> None:
    mine = l40s.acquire(LeaseRequest(share=25, parent="0"))
    with pytest.raises(InUseError) as caught:
        l40s.acquire(LeaseRequest(share=25, parent="0"), owner=NOBODY)
    assert mine.user in caught.value.message and "one Unix user at a time" in caught.value.message
    assert "--allow-other-user" in (caught.value.hint or "")
    turns = l40s.acquire(LeaseRequest(share=25, parent="0", allow_other_user=True), owner=NOBODY)
    assert any("take turns" in note for note in turns.notes)
    elsewhere = l40s.acquire(LeaseRequest(share=25), owner=NOBODY)  # unnamed: another GPU
    assert elsewhere.parent_uuid != mine.parent_uuid


def waiting_client(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    """A process that becomes a simulated CUDA client once its environment file exists (so a
    lease can name it as holder before it starts using the GPU)."""
    env_file = tmp_path / f"{name}.env"
    command = " ".join([*SIM_CLIENT, *args])
    script = f'while [ ! -f "{env_file}" ]; do sleep 0.05; done; . "{env_file}"; exec {command}'
    process = subprocess.Popen(
        ["sh", "-c", script], env=BASE_ENV, stdout=subprocess.PIPE, text=True
    )
    return process, env_file


def start_with(lease_env: dict[str, str], env_file: Path) -> None:
    env_file.write_text("\n".join(shell_exports(lease_env)) + "\n")


def test_a_fault_ends_every_client_of_the_server_and_their_leases(
    l40s: LocalNode, tmp_path: Path
) -> None:
    started = []
    for name, args in (
        ("a", ("--hold-s", "60")),
        ("b", ("--hold-s", "60")),
        ("c", ("--hold-s", "60", "--fault-after-s", "1.5")),
    ):
        process, env_file = waiting_client(tmp_path, name, *args)
        lease = l40s.acquire(LeaseRequest(share=25, parent="2", pid=process.pid))
        start_with(lease_environment(lease), env_file)
        started.append((process, lease))
    try:
        codes = [process.wait(timeout=60) for process, _ in started]
        assert codes == [4, 4, 9]  # the victims lost their server; the third faulted
        victims = [events(process)[-1] for process, _ in started[:2]]
        assert all("fatal fault" in event["detail"] for event in victims)
        ended = {lease.lease_id: lease for lease in l40s.leases(history=True)}
        for _, lease in started:
            assert ended[lease.lease_id].end_reason is EndReason.HOLDER_DIED
        assert l40s.inventory().soft == []
    finally:
        for process, _ in started:
            process.kill()
            process.wait()


def test_a_killed_holder_frees_its_share(l40s: LocalNode, tmp_path: Path) -> None:
    process, env_file = waiting_client(tmp_path, "whole", "--hold-s", "60")
    lease = l40s.acquire(LeaseRequest(share=100, parent="3", pid=process.pid))
    start_with(lease_environment(lease), env_file)
    wait_event(process, "attached")
    with pytest.raises(InsufficientResourcesError):
        l40s.acquire(LeaseRequest(share=10, parent="3"))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=20)
    again = l40s.acquire(LeaseRequest(share=100, parent="3"))
    assert again.parent_uuid == lease.parent_uuid
    (old,) = [x for x in l40s.leases(history=True) if x.lease_id == lease.lease_id]
    assert old.end_reason is EndReason.HOLDER_DIED


def test_the_daemon_restarts_after_sigkill(sim_dir: Path) -> None:
    with soft_node("l40s-node", sim_dir) as node:
        lease = node.acquire(LeaseRequest(share=25, parent="0"))
        control = node.mps.control(lease.parent_uuid or "")
        first = control.state().pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: control.state().status is DaemonStatus.STALE)
        node.acquire(LeaseRequest(share=25, parent="0"))  # leasing restarts it
        second = control.state().pid
        assert control.state().status is DaemonStatus.RUNNING and second not in (None, first)
        os.kill(second or 0, signal.SIGKILL)
        _wait_for(lambda: control.state().status is DaemonStatus.STALE)
    with soft_node("l40s-node", sim_dir) as reopened:  # opening the node repairs it
        state = reopened.mps.control(lease.parent_uuid or "").state()
        assert state.status is DaemonStatus.RUNNING and state.pid not in (first, second)


def test_opening_the_node_stops_a_daemon_nothing_needs(sim_dir: Path) -> None:
    with soft_node("l40s-node", sim_dir) as node:
        lease = node.acquire(LeaseRequest(share=25, parent="0"))
        node.store.release(lease.lease_id, user=lease.user)  # behind the node's back
        control = node.mps.control(lease.parent_uuid or "")
        assert control.state().status is DaemonStatus.RUNNING
    with soft_node("l40s-node", sim_dir) as reopened:
        assert reopened.mps.control(lease.parent_uuid or "").state().status is (
            DaemonStatus.STOPPED
        )


def _wait_for(condition: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_run_checks_that_the_command_attached(
    l40s: LocalNode, caplog: pytest.LogCaptureFixture
) -> None:
    from migctl.node.leaser import NodeLeaser
    from migctl.tenancy.soft import watch_attach

    leaser = NodeLeaser(l40s, LeaseRequest(share=25, parent="0"))
    host = l40s.mps

    def check(lease: Lease, pid: int) -> threading.Thread | None:
        return watch_attach(host, lease, pid)

    caplog.set_level(logging.WARNING)
    client = [*SIM_CLIENT, "--hold-s", "1"]
    result = run_with(leaser, client, attach_check=check)
    assert result.exit_code == 0 and result.lease.soft
    assert not [r for r in caplog.records if "attached" in r.getMessage()]
    result = run_with(leaser, [sys.executable, "-c", "pass"], attach_check=check)
    assert result.exit_code == 0
    (warning,) = [r.getMessage() for r in caplog.records if "attached" in r.getMessage()]
    assert f"soft lease {result.lease.lease_id}" in warning and "without its share" in warning
    assert l40s.leases() == []  # both released; the idle daemon stopped
    assert l40s.mps.control(result.lease.parent_uuid or "").state().status is DaemonStatus.STOPPED
