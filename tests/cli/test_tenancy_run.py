"""``migctl run`` end to end on the simulator, as separate processes (the way users run it)."""

from __future__ import annotations

import itertools
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import migctl
from migctl.backends.select import open_backend
from migctl.cli.main import run
from migctl.leases import EndReason, Lease, LeaseStore
from migctl.workflow import create_gpu_instances, parse_profile_requests, set_mode

SRC = Path(migctl.__file__).resolve().parents[1]
MACHINE = "h100-single"
# A child that writes its environment and pid to a file, then exits with the given code.
ENV_CHILD = (
    "import json, os, sys; "
    "json.dump({'env': dict(os.environ), 'pid': os.getpid()}, open(sys.argv[1], 'w')); "
    "sys.exit(int(sys.argv[2]))"
)


@pytest.fixture(autouse=True)
def lease_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leases.db"
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(path))
    monkeypatch.setenv("MIGCTL_SIM", MACHINE)
    monkeypatch.delenv("MIGCTL_OUTPUT", raising=False)
    return path


@pytest.fixture
def devices() -> list[str]:
    """Two 1g.10gb MIG devices on the simulated H100; returns their uuids."""
    backend = open_backend(MACHINE)
    try:
        set_mode(backend, [0], True)
        requests = parse_profile_requests(backend.live_model(0), "1g.10gb,1g.10gb", 0)
        create_gpu_instances(backend, 0, requests, with_ci=True)
        return [d.uuid for d in backend.mig_devices(0)]
    finally:
        backend.close()


def migctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "migctl", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def migctl_run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        migctl_argv("run", *args),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        migctl_argv("run", *args),
        env=child_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def history(db: Path) -> list[Lease]:
    with LeaseStore(db) as store:
        return store.list_leases(active_only=False)


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def active_lease(db: Path) -> Lease | None:
    if not db.exists():
        return None
    with LeaseStore(db) as store:
        leases = store.list_leases()
    return leases[0] if leases else None


def command_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def test_child_sees_the_device_and_its_exit_code_is_returned(
    devices: list[str], tmp_path: Path, lease_db: Path
) -> None:
    out = tmp_path / "child.json"
    done = migctl_run("--profile", "1g.10gb", "--job", "e2e", "--", sys.executable, "-c",
                      ENV_CHILD, str(out), "3")  # fmt: skip
    assert done.returncode == 3, done.stderr
    seen = json.loads(out.read_text())
    env = seen["env"]
    assert env["CUDA_VISIBLE_DEVICES"] in devices
    assert env["NVIDIA_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"]
    [lease] = history(lease_db)
    assert env["MIGCTL_LEASE_ID"] == str(lease.lease_id)
    assert (lease.uuid, lease.pid, lease.job) == (env["CUDA_VISIBLE_DEVICES"], seen["pid"], "e2e")
    assert lease.end_reason is EndReason.RELEASED  # released although the command failed
    assert f"lease {lease.lease_id}" in done.stderr


def test_command_not_found_is_127_and_releases(devices: list[str], lease_db: Path) -> None:
    done = migctl_run("--profile", "1g.10gb", "--", "no-such-command-xyz")
    assert done.returncode == 127
    assert "command not found: no-such-command-xyz" in done.stderr
    assert "Traceback" not in done.stderr
    assert [x.end_reason for x in history(lease_db)] == [EndReason.RELEASED]


def test_command_not_executable_is_126(devices: list[str], tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")  # not chmod +x
    done = migctl_run("-q", "--", str(script))
    assert done.returncode == 126 and "cannot execute" in done.stderr


def test_a_command_killed_by_a_signal_gives_128_plus_n(devices: list[str]) -> None:
    done = migctl_run("-q", "--", "sh", "-c", "kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL


def test_nothing_to_lease_fails_before_running_anything(devices: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    done = migctl_run("--profile", "7g.80gb", "--", "touch", str(marker))
    assert done.returncode == 5  # insufficient resources
    assert "no MIG device matches" in done.stderr and not marker.exists()


def test_sigint_reaches_the_child_and_the_lease_is_released(
    devices: list[str], lease_db: Path
) -> None:
    proc = spawn("-q", "--profile", "1g.10gb", "--", "sleep", "30")
    lease = wait_for(lambda: active_lease(lease_db))
    wait_for(lambda: command_of(lease.pid) == "sleep")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 128 + signal.SIGINT  # sleep was killed by the SIGINT
    assert not pid_alive(lease.pid)
    assert [x.end_reason for x in history(lease_db)] == [EndReason.RELEASED]


def test_terminal_ctrl_c_reaches_the_child_exactly_once(devices: list[str], tmp_path: Path) -> None:
    """Ctrl-C on a terminal signals the whole foreground group: migctl must not add a copy."""
    out = tmp_path / "count"
    child = (
        "import signal, sys, time, pathlib\n"
        "got = []\n"
        "signal.signal(signal.SIGINT, lambda s, f: got.append(s))\n"
        "pathlib.Path(sys.argv[1] + '.ready').write_text('')\n"
        "deadline = time.time() + 15\n"
        "while not got and time.time() < deadline: time.sleep(0.02)\n"
        "time.sleep(0.5)\n"
        "pathlib.Path(sys.argv[1]).write_text(str(len(got)))\n"
        "sys.exit(5)\n"
    )
    argv = migctl_argv("run", "-q", "--", sys.executable, "-c", child, str(out))
    pid, master = pty.fork()  # the child leads a new session with the pty as its terminal
    if pid == 0:
        try:
            os.execve(argv[0], argv, child_env())
        finally:
            os._exit(127)
    try:
        wait_for(lambda: Path(f"{out}.ready").exists())
        os.write(master, b"\x03")  # the terminal's interrupt character (Ctrl-C)
        deadline = time.monotonic() + 15
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            _drain(master)
            time.sleep(0.05)
        assert status[0] == pid and os.waitstatus_to_exitcode(status[1]) == 5
    finally:
        os.close(master)
    assert out.read_text() == "1"


def _drain(fd: int) -> None:
    """Read what the pty holds, so a chatty child never blocks on a full terminal."""
    while select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 4096):
                return
        except OSError:
            return


def test_the_device_is_busy_in_status_while_the_child_runs(
    devices: list[str], lease_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = spawn("-q", "--profile", "1g.10gb", "--job", "busy-check", "--", "sleep", "30")
    try:
        lease = wait_for(lambda: active_lease(lease_db))
        wait_for(lambda: command_of(lease.pid) == "sleep")  # attached before it exec'd
        device = _status_device(capsys, lease.uuid)
        assert device["pids"] == [lease.pid]
        assert device["lease"]["job"] == "busy-check"
        assert device["lease"]["lease_id"] == lease.lease_id
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    device = _status_device(capsys, lease.uuid)
    assert device["pids"] == [] and device["lease"] is None


def _status_device(capsys: pytest.CaptureFixture[str], uuid: str) -> dict[str, Any]:
    capsys.readouterr()
    assert run(["-o", "json", "status"]) == 0
    data = json.loads(capsys.readouterr().out)
    found = [
        device
        for gpu in data["gpus"]
        for gi in gpu["gpu_instances"]
        for device in gi["mig_devices"]
        if device["uuid"] == uuid
    ]
    assert len(found) == 1
    device: dict[str, Any] = found[0]
    return device


def test_sigkilled_migctl_lease_lives_with_the_child_then_is_reclaimed(
    devices: list[str], lease_db: Path
) -> None:
    proc = spawn("-q", "--device", devices[0], "--", "sleep", "30")
    lease = wait_for(lambda: active_lease(lease_db))
    wait_for(lambda: command_of(lease.pid) == "sleep")  # leased first, then exec'd
    proc.kill()  # SIGKILL: migctl cannot release anything
    proc.wait(timeout=10)
    assert pid_alive(lease.pid)  # the command lives on...
    assert active_lease(lease_db) == lease  # ...and so does its lease
    assert migctl_run("-q", "--device", devices[0], "--", "true").returncode == 6  # in use
    os.kill(lease.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(lease.pid))
    # Reaped once its holder is gone: at once if init already collected the orphan (or it is a
    # zombie under PID 1); a zombie under a live subreaper still holds it until collected.
    wait_for(lambda: active_lease(lease_db) is None)
    assert history(lease_db)[0].end_reason is EndReason.HOLDER_DIED
    again = migctl_run("-q", "--device", devices[0], "--", "true")
    assert again.returncode == 0, again.stderr  # the device is usable again


def test_concurrent_runs_never_share_a_device(
    devices: list[str], tmp_path: Path, lease_db: Path
) -> None:
    child = (
        "import json, os, sys, time\n"
        "start = time.time(); time.sleep(0.3); end = time.time()\n"
        "json.dump([os.environ['CUDA_VISIBLE_DEVICES'], start, end], open(sys.argv[1], 'w'))\n"
    )
    outs = [tmp_path / f"run{n}.json" for n in range(5)]
    procs = [
        spawn("-q", "--wait", "60", "--", sys.executable, "-c", child, str(out)) for out in outs
    ]
    codes = [proc.wait(timeout=90) for proc in procs]
    assert codes == [0] * len(procs), [p.stderr.read() if p.stderr else "" for p in procs]
    spans = [json.loads(out.read_text()) for out in outs]
    assert {uuid for uuid, _, _ in spans} <= set(devices)
    for uuid in devices:
        mine = sorted((start, end) for used, start, end in spans if used == uuid)
        for (_, end), (start, _) in itertools.pairwise(mine):
            assert end <= start, f"{uuid} was used by two commands at once"
    leases = history(lease_db)
    assert len(leases) == 5 and {x.end_reason for x in leases} == {EndReason.RELEASED}
