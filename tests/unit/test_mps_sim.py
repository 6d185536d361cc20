"""The simulated MPS model: one user per server, limits, fault propagation, refusal while winding down.

Real processes throughout: the simulated control daemon and simulated CUDA clients.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.mps.control import MpsControl
from migctl.mps.environment import client_environment
from migctl.mps.shares import ParentDevice, SoftDevice
from migctl.sim.mps_state import MpsStore, SimClient, SimMps, connect, parse_limit, reap
from tests.unit.mps_programs import (
    BASE_ENV,
    SIM_CONTROL,
    Clients,
    control_for,
    end_daemon,
    events,
    short_state_dir,
    wait_event,
)

GPU = ParentDevice("GPU-5e7a0c2d-0000-4000-8000-00000000000a", 0, 81559, 132, "H100 80GB HBM3")
ME, OTHER = os.getuid(), os.getuid() + 4242

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def clients() -> Iterator[Clients]:
    started = Clients()
    yield started
    started.close()


@pytest.fixture
def control() -> Iterator[MpsControl]:
    with short_state_dir() as state_dir:
        made = control_for(state_dir, GPU.uuid, MIGCTL_SIM_MPS_MEMORY_MIB="4096")
        made.start()
        yield made
        end_daemon(made)


def share(control: MpsControl, percent: int = 50, memory_mib: int = 1024) -> dict[str, str]:
    return client_environment(SoftDevice(GPU, percent, memory_mib), control.paths)


def test_a_second_user_waits_until_the_first_users_clients_exit(
    control: MpsControl, clients: Clients
) -> None:
    first = clients.start(share(control), "--hold-s", "60")
    first_server = control.wait_attached(first.pid)
    second = clients.start(share(control), "--uid", str(OTHER), "--hold-s", "60")
    assert wait_event(second, "queued")
    time.sleep(0.3)
    assert not control.attached(second.pid)  # taking turns, not side by side
    assert control.servers() == (first_server,)
    same_user = clients.start(share(control), "--hold-s", "60")
    assert wait_event(same_user, "queued")  # the first server drains: no newcomers
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=20)
    second_server = control.wait_attached(second.pid)
    assert second_server != first_server
    assert control.clients(second_server) == (second.pid,)
    assert not control.attached(same_user.pid)  # waits its turn behind the other user


def test_a_queued_client_gives_up_after_its_wait(control: MpsControl, clients: Clients) -> None:
    first = clients.start(share(control), "--hold-s", "60")
    control.wait_attached(first.pid)
    second = clients.start(share(control), "--uid", str(OTHER), "--wait-s", "0.3")
    assert second.wait(timeout=20) == 7
    assert events(second)[-1]["event"] == "still-queued"


def test_a_fatal_fault_ends_every_client_and_newcomers_are_refused_meanwhile(
    control: MpsControl, clients: Clients
) -> None:
    bystanders = [clients.start(share(control, 25), "--hold-s", "60") for _ in range(2)]
    stuck = clients.start(share(control, 25), "--hold-s", "60")
    for client in (*bystanders, stuck):
        control.wait_attached(client.pid)
    stuck.send_signal(signal.SIGSTOP)  # a client slow to notice keeps the server winding down
    culprit = clients.start(share(control, 25), "--fault-after-s", "0.2")
    assert culprit.wait(timeout=20) == 9
    for client in bystanders:
        assert client.wait(timeout=20) == 4
        assert "fatal fault in client" in events(client)[-1]["detail"]
    (server,) = control.servers()
    assert control.command(f"get_server_status {server}") == "FAULTED"
    newcomer = clients.start(share(control, 25), "--hold-s", "1")
    assert newcomer.wait(timeout=20) == 6
    assert "shutting down after a fatal fault" in events(newcomer)[-1]["detail"]
    stuck.send_signal(signal.SIGCONT)
    assert stuck.wait(timeout=20) == 4
    fresh = clients.start(share(control, 25), "--hold-s", "30")
    assert control.wait_attached(fresh.pid) != server  # a new server once the old one is gone


def test_memory_is_limited_per_client_and_by_the_device(
    control: MpsControl, clients: Clients
) -> None:
    big = clients.start(share(control, 50, 3072), "--alloc-mib", "3000", "--hold-s", "60")
    assert wait_event(big, "alloc")["result"] == "ok"
    other = clients.start(share(control, 50, 3072), "--alloc-mib", "2000")
    assert other.wait(timeout=20) == 5  # within its limit, past the 4096 MiB device
    assert "the device has 1096 MiB free" in events(other)[-1]["detail"]
    unlimited = clients.start(
        {**share(control), "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": ""}, "--alloc-mib", "1000"
    )
    assert unlimited.wait(timeout=20) == 0


def test_the_daemon_defaults_apply_to_clients_without_their_own(
    control: MpsControl, clients: Clients
) -> None:
    control.command("set_default_active_thread_percentage 50")
    assert control.command("get_default_active_thread_percentage") == "50.0"
    control.command("set_default_device_pinned_mem_limit 0 1G")
    assert control.command("get_default_device_pinned_mem_limit 0") == "1024M"
    env = {k: v for k, v in share(control).items() if "PERCENTAGE" not in k and "LIMIT" not in k}
    client = clients.start(env, "--alloc-mib", "2000")
    assert wait_event(client, "attached")["sms"] == 66
    assert client.wait(timeout=20) == 5  # the default 1 GiB limit holds


def test_terminate_client_and_quit_end_clients(control: MpsControl, clients: Clients) -> None:
    victim = clients.start(share(control), "--hold-s", "60")
    server = control.wait_attached(victim.pid)
    control.command(f"terminate_client {server} {victim.pid}")
    assert victim.wait(timeout=20) == 4
    survivor = clients.start(share(control), "--hold-s", "60")
    control.wait_attached(survivor.pid)
    control.stop(force=True)
    assert survivor.wait(timeout=20) == 4


def test_shutdown_server_drains(control: MpsControl, clients: Clients) -> None:
    client = clients.start(share(control), "--hold-s", "60")
    server = control.wait_attached(client.pid)
    control.command(f"shutdown_server {server} -f")
    assert client.wait(timeout=20) == 4
    assert control.servers() == ()


def test_the_front_end_without_a_daemon_and_without_a_pipe_dir(tmp_path: Path) -> None:
    env = {**BASE_ENV, "CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "pipe")}
    result = subprocess.run(
        SIM_CONTROL, input="get_server_list\n", env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Cannot find MPS control daemon process" in result.stderr
    bare = {k: v for k, v in BASE_ENV.items() if k != "CUDA_MPS_PIPE_DIRECTORY"}
    result = subprocess.run(
        SIM_CONTROL, input="", env=bare, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2


def test_a_stray_daemon_ends_after_its_lifetime() -> None:
    with short_state_dir() as state_dir:
        control = control_for(state_dir, GPU.uuid, MIGCTL_SIM_MPS_LIFETIME_S="0.5")
        pid = control.start()
        deadline = time.monotonic() + 20
        while control.state().pid == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        assert control.state().pid is None


@pytest.mark.parametrize(
    ("text", "mib"), [("0=12G", 12288), ("0=512M", 512), ("1=1G,0=2048", 2048), ("0=1T", 1048576)]
)
def test_pinned_limit_values(text: str, mib: int) -> None:
    assert parse_limit(text) == mib


@pytest.mark.parametrize("text", ["12G", "1=1G", "0=", "0=0M", "0=-1G", "0=1.5G", "zero"])
def test_bad_pinned_limit_values(text: str) -> None:
    with pytest.raises(ValueError):
        parse_limit(text)


def test_the_model_admits_a_second_user_only_after_the_first(tmp_path: Path) -> None:
    me = os.getpid()
    start = int(Path(f"/proc/{me}/stat").read_text().rpartition(")")[2].split()[19])
    state = SimMps()
    assert connect(state, SimClient(pid=me, start_time=start, uid=ME, percent=50)) == "attached"
    assert connect(state, SimClient(pid=1, start_time=None, uid=OTHER, percent=50)) == "queued"
    state.servers[0].clients.clear()  # the first user's client exits
    reap(state)
    assert [c.pid for c in state.servers[0].clients] == [1]
    assert state.servers[0].uid == OTHER
    store = MpsStore(tmp_path)
    with store.transaction() as stored:
        stored.servers = state.servers
    assert store.read().servers[0].uid == OTHER
