"""The MPS lifecycle (start, query, attach check, stop, restart) against the simulated program.

Every daemon and client here is a real process: ``python -m migctl.sim.mps_control`` plays
``nvidia-cuda-mps-control`` and ``python -m migctl.sim.mps_client`` a CUDA program.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.errors import DriverError, InUseError, InvalidStateError, NotFoundError, UsageError
from migctl.host import is_alive
from migctl.mps.control import DaemonStatus, MpsControl, known_daemons
from migctl.mps.environment import (
    client_environment,
    daemon_environment,
    mps_paths,
    pinned_limit_value,
)
from migctl.mps.shares import ParentDevice, SoftDevice
from tests.unit.mps_programs import (
    SIM_CONTROL,
    Clients,
    control_for,
    end_daemon,
    events,
    short_state_dir,
    wait_event,
)

GPU = ParentDevice("GPU-5e7a0c2d-0000-4000-8000-000000000001", 0, 81559, 132, "H100 80GB HBM3")
MIG = ParentDevice("MIG-9b1f0c2d-0000-4000-8000-000000000002", 1, 40192, 60, "3g.40gb")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with short_state_dir() as path:
        yield path


@pytest.fixture
def clients() -> Iterator[Clients]:
    started = Clients()
    yield started
    started.close()


@pytest.fixture
def control(state_dir: Path) -> Iterator[MpsControl]:
    made = control_for(state_dir, GPU.uuid)
    yield made
    end_daemon(made)


def test_start_is_idempotent_and_stop_quits(control: MpsControl) -> None:
    assert control.state().status is DaemonStatus.STOPPED
    pid = control.start()
    assert is_alive(pid, None)
    assert control.state().pid == pid
    assert control.start() == pid  # already running: nothing new
    assert control.servers() == ()
    assert control.stop() is True
    assert control.state().status is DaemonStatus.STOPPED
    assert not is_alive(pid, None) or _is_zombie(pid)
    assert control.stop() is False
    # the sockets stay after quit (as with the real daemon); a new start is not disturbed
    assert (control.paths.pipe_dir / "control").exists()
    again = control.start()
    assert again != pid and control.state().status is DaemonStatus.RUNNING


def _is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_the_daemon_gets_its_parent_and_private_directories(control: MpsControl) -> None:
    control.start()
    log = (control.paths.log_dir / "control.log").read_text()
    assert repr(GPU.uuid) in log
    assert control.paths.pipe_dir.is_dir()
    assert (control.paths.root / "parent").read_text().strip() == GPU.uuid
    env = daemon_environment(
        control.paths, {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "5", "PATH": "/bin"}
    )
    assert env["CUDA_VISIBLE_DEVICES"] == GPU.uuid
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in env  # would be every client's default
    assert env["PATH"] == "/bin"


def test_client_environment_attaches_with_its_share_and_limit(
    control: MpsControl, clients: Clients
) -> None:
    control.start()
    device = SoftDevice(GPU, 25, 16384)
    env = client_environment(device, control.paths)
    assert env == {
        "CUDA_VISIBLE_DEVICES": GPU.uuid,
        "CUDA_MPS_PIPE_DIRECTORY": str(control.paths.pipe_dir),
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=16384M",
    }
    client = clients.start(env, "--hold-s", "30", "--alloc-mib", "16000")
    server = control.wait_attached(client.pid)
    assert control.servers() == (server,)
    assert control.clients(server) == (client.pid,)
    assert control.attached(client.pid)
    attached = wait_event(client, "attached")
    assert attached["sms"] == device.sm_estimate == 32
    assert attached["limit_mib"] == 16384
    assert wait_event(client, "alloc")["result"] == "ok"  # 16000 MiB fits the 16 GiB limit
    greedy = clients.start(env, "--alloc-mib", "16000", "--alloc-mib", "1000")
    assert greedy.wait(timeout=20) == 5  # 1000 MiB more does not
    assert "pinned limit 16384 MiB" in events(greedy)[-1]["detail"]


def test_a_client_that_cannot_reach_the_daemon_is_not_attached(
    control: MpsControl, clients: Clients, state_dir: Path
) -> None:
    control.start()
    stray = SoftDevice(GPU, 50, 1024)
    elsewhere = mps_paths(state_dir, "GPU-ffff")  # another parent's (absent) daemon
    env = {
        **client_environment(stray, control.paths),
        "CUDA_MPS_PIPE_DIRECTORY": str(elsewhere.pipe_dir),
    }
    client = clients.start(env, "--hold-s", "30")
    assert wait_event(client, "no-mps")
    with pytest.raises(InvalidStateError) as caught:
        control.wait_attached(client.pid, timeout_s=0.5)
    assert "may run without MPS" in caught.value.message
    assert not control.attached(client.pid)


def test_a_client_that_exits_before_attaching_is_reported(
    control: MpsControl, clients: Clients
) -> None:
    control.start()
    env = {**client_environment(SoftDevice(GPU, 50, 1024), control.paths)}
    env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = "zero"  # CUDA refuses to start
    client = clients.start(env)
    assert client.wait(timeout=20) == 3
    with pytest.raises(InvalidStateError) as caught:
        control.wait_attached(client.pid, timeout_s=5)
    assert "exited before it attached" in caught.value.message


def test_a_client_for_another_device_fails_to_start(control: MpsControl, clients: Clients) -> None:
    control.start()
    env = client_environment(SoftDevice(GPU, 50, 1024), control.paths)
    env["CUDA_VISIBLE_DEVICES"] = MIG.uuid
    client = clients.start(env)
    assert client.wait(timeout=20) == 3
    assert "not served by this MPS daemon" in events(client)[-1]["detail"]


def test_stop_refuses_while_clients_run_unless_forced(
    control: MpsControl, clients: Clients
) -> None:
    control.start()
    client = clients.start(
        client_environment(SoftDevice(GPU, 50, 1024), control.paths), "--hold-s", "60"
    )
    control.wait_attached(client.pid)
    with pytest.raises(InUseError) as caught:
        control.stop()
    assert str(client.pid) in caught.value.message
    assert control.state().status is DaemonStatus.RUNNING  # refused: nothing changed
    assert control.stop(force=True)
    assert client.wait(timeout=20) == 4  # it lost its server
    assert events(client)[-1]["event"] == "lost-server"


def test_a_crashed_daemon_is_detected_and_restarted(control: MpsControl, state_dir: Path) -> None:
    pid = control.start()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while control.state().status is DaemonStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    state = control.state()
    assert state.status is DaemonStatus.STALE
    assert state.pid == pid
    (control.paths.pipe_dir / "leftover-socket").write_text("")
    with pytest.raises(InvalidStateError):
        control.servers()
    assert control.ensure_running() is True
    assert not (control.paths.pipe_dir / "leftover-socket").exists()
    new_pid = control.state().pid
    assert new_pid is not None and new_pid != pid
    assert control.ensure_running() is False
    assert [p.parent_uuid for p in known_daemons(state_dir)] == [GPU.uuid]


def test_a_recycled_pid_in_the_pid_file_is_not_taken_for_the_daemon(control: MpsControl) -> None:
    control.paths.create()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (control.paths.pipe_dir / "nvidia-cuda-mps-control.pid").write_text(f"{sleeper.pid}\n")
        assert control.state().status is DaemonStatus.STALE
        assert control.start() != sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_second_daemon_in_the_same_directory_is_refused(control: MpsControl) -> None:
    control.start()
    env = daemon_environment(control.paths, dict(os.environ))
    result = subprocess.run(
        [*SIM_CONTROL, "-d"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "already running" in result.stderr


def test_compute_mode_is_touched_only_when_asked(state_dir: Path) -> None:
    calls: list[str] = []

    class Recorder:
        def set_exclusive_process(self, parent_uuid: str) -> None:
            calls.append(parent_uuid)

    first = control_for(state_dir, GPU.uuid)
    second = control_for(state_dir, MIG.uuid)
    try:
        first.start()
        assert calls == []
        second.start(compute_mode=Recorder())
        assert calls == [MIG.uuid]
    finally:
        end_daemon(first)
        end_daemon(second)


def test_each_parent_has_its_own_daemon(state_dir: Path, clients: Clients) -> None:
    first, second = control_for(state_dir, GPU.uuid), control_for(state_dir, MIG.uuid)
    try:
        first.start()
        second.start()
        assert first.paths.pipe_dir != second.paths.pipe_dir
        client = clients.start(
            client_environment(SoftDevice(MIG, 50, 1024), second.paths), "--hold-s", "30"
        )
        second.wait_attached(client.pid)
        assert not first.attached(client.pid)
        first.stop()
        assert second.attached(client.pid)  # stopping one parent's daemon leaves the other
    finally:
        end_daemon(first)
        end_daemon(second)


def test_queries_without_a_daemon_and_missing_programs(state_dir: Path) -> None:
    control = control_for(state_dir, GPU.uuid)
    with pytest.raises(InvalidStateError) as caught:
        control.servers()
    assert "not running" in caught.value.message
    missing = MpsControl(control.paths, program=("/nonexistent/nvidia-cuda-mps-control",))
    with pytest.raises(NotFoundError):
        missing.start()


def test_an_unknown_command_is_a_driver_error(control: MpsControl) -> None:
    control.start()
    with pytest.raises(DriverError) as caught:
        control.command("make_coffee")
    assert "make_coffee" in caught.value.message


def test_paths_are_short_and_stable() -> None:
    paths = mps_paths(Path("/var/lib/migctl"), MIG.uuid)
    assert paths == mps_paths(Path("/var/lib/migctl"), MIG.uuid)
    assert paths.root.name.startswith("mig-") and len(paths.root.name) == 16
    with pytest.raises(UsageError):
        mps_paths(Path("/" + "d" * 100), GPU.uuid)
    assert pinned_limit_value(12288) == "0=12288M"
    with pytest.raises(UsageError):
        pinned_limit_value(0)
    with pytest.raises(UsageError):
        client_environment(SoftDevice(GPU, 25, 1024), paths)  # another parent's directories
