"""``migctl run`` through the daemon as real processes: as root, killed, and as other users.

``migctl run`` names its command's PID as the lease holder (the daemon is on this host, behind
the Unix socket), so the lease ends when the command ends even if migctl itself is SIGKILLed.
The other-user tests (root only) fork a child that ``setuid``s to ``daemon`` (a plain user of
the module daemon) and runs the CLI in-process there: the interpreter cannot be started again as
that user here (it lives under /root), so every module the verbs need is imported first.
"""

from __future__ import annotations

import importlib
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from migctl.cli.main import run
from tests.cli.conftest import Result, daemon_devices, migctl
from tests.server.daemon import SRC, Daemon

Capsys = pytest.CaptureFixture[str]


def daemon_leases(daemon: Daemon) -> list[dict[str, Any]]:
    with daemon.client() as root:
        found: list[dict[str, Any]] = root.get("/v1/leases", params={"history": True}).json()
    return found


def wait_until(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def cli_env(daemon: Daemon) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    env.update(PYTHONPATH=str(SRC), MIGCTL_URL=f"unix://{daemon.socket_path}")
    return env


def shared_dir(daemon: Daemon) -> Path:
    """A directory every user may write to (under the daemon's 0755 directory)."""
    path = daemon.root / "shared"
    path.mkdir(exist_ok=True)
    path.chmod(0o777)
    return path


def test_run_as_a_process_through_the_daemon(via_daemon: Daemon) -> None:
    out = shared_dir(via_daemon) / "run.txt"
    command = [sys.executable, "-m", "migctl", "run", "--profile", "1g.10gb", "--",
               "sh", "-c", f"echo $CUDA_VISIBLE_DEVICES $$ > {out}; exit 3"]  # fmt: skip
    done = subprocess.run(
        command, env=cli_env(via_daemon), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr  # the command's own exit code
    uuid, pid = out.read_text().split()
    assert uuid in daemon_devices(via_daemon)
    lease = next(lease for lease in daemon_leases(via_daemon) if lease["pid"] == int(pid))
    assert (lease["uuid"], lease["end_reason"]) == (uuid, "released")


def test_a_killed_migctl_leaves_the_lease_to_its_command(via_daemon: Daemon) -> None:
    pid_file = shared_dir(via_daemon) / "holder.pid"
    command = [sys.executable, "-m", "migctl", "run", "-p", "1g.10gb", "--",
               "sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]  # fmt: skip
    runner = subprocess.Popen(command, env=cli_env(via_daemon), stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the command")
        holder = int(pid_file.read_text())
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        lease = next(lease for lease in daemon_leases(via_daemon) if lease["pid"] == holder)
        assert lease["active"], "the command still runs: its lease must stay"
    finally:
        if runner.poll() is None:
            runner.kill()
    os.kill(holder, signal.SIGKILL)

    def ended() -> bool:
        return not next(x for x in daemon_leases(via_daemon) if x["pid"] == holder)["active"]

    wait_until(ended, "the daemon reaps the lease of a dead holder")
    lease = next(lease for lease in daemon_leases(via_daemon) if lease["pid"] == holder)
    assert lease["end_reason"] == "holder-died"


# -- as other users (root only) ----------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as other users")


def cli_as(user: str, argv: list[str], env: dict[str, str], scratch: Path) -> Result:
    """``migctl ARGV`` in a forked child running as ``user`` (stdout/stderr via files)."""
    entry = pwd.getpwnam(user)
    out_path, err_path = scratch / "out.txt", scratch / "err.txt"
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 99
            try:
                os.dup2(out_file.fileno(), 1)
                os.dup2(err_file.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.setgroups([])
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
                os.environ.clear()
                os.environ.update(env)
                code = run(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
    _, status = os.waitpid(child, 0)
    return Result(os.waitstatus_to_exitcode(status), out_path.read_text(), err_path.read_text())


@pytest.fixture
def warm(via_daemon: Daemon, capsys: Capsys, user_tokens: dict[str, str]) -> None:
    """Import what the verbs import lazily, by running them once (as root, or as a user)."""
    # importlib.readers: httpx reads certifi's CA file through importlib.resources, lazily
    for module in ("migctl.node.remote", "migctl.server.auth", "importlib.readers"):
        importlib.import_module(module)

    assert migctl(capsys, "run", "-q", "-p", "1g.10gb", "--", "true").code == 0
    assert migctl(capsys, "-o", "json", "lease", "list").code == 0
    assert migctl(capsys, "apply", "--split", "7", "--dry-run").code == 0
    with pytest.MonkeyPatch.context() as patch:  # a 403, with its error path
        patch.setenv("MIGCTL_TOKEN", user_tokens["alice"])
        assert migctl(capsys, "apply", "--split", "3").code == 4


@needs_root
def test_an_unprivileged_user_runs_a_command_on_a_leased_device(
    via_daemon: Daemon, warm: None, tmp_path: Path
) -> None:
    shared = shared_dir(via_daemon)
    out = shared / "cuda.txt"
    env = {"MIGCTL_URL": f"unix://{via_daemon.socket_path}", "PATH": "/usr/bin:/bin"}
    argv = ["run", "--profile", "1g.10gb", "--", "sh", "-c", f"echo $CUDA_VISIBLE_DEVICES > {out}"]
    earlier = {x["lease_id"] for x in daemon_leases(via_daemon)}
    result = cli_as("daemon", argv, env, tmp_path)
    assert result.code == 0, result.err
    uuid = out.read_text().strip()
    assert uuid in daemon_devices(via_daemon)
    theirs = [x for x in daemon_leases(via_daemon) if x["lease_id"] not in earlier]
    assert [(x["uuid"], x["uid"], x["end_reason"]) for x in theirs] == [(uuid, 1, "released")]


@needs_root
def test_an_unprivileged_user_leases_and_lists_but_cannot_apply(
    via_daemon: Daemon, warm: None, tmp_path: Path
) -> None:
    env = {"MIGCTL_URL": f"unix://{via_daemon.socket_path}", "PATH": "/usr/bin:/bin"}
    mine = cli_as("daemon", ["-o", "json", "lease", "acquire", "-p", "1g.10gb"], env, tmp_path)
    assert mine.code == 0, mine.err
    lease_id = json.loads(mine.out)["lease"]["lease_id"]
    listed = cli_as("daemon", ["-o", "json", "lease", "list"], env, tmp_path)
    assert [x["user"] for x in json.loads(listed.out)["leases"] if x["lease_id"] == lease_id] == [
        "daemon"
    ]
    before = daemon_devices(via_daemon)
    refused = cli_as("daemon", ["apply", "--split", "3"], env, tmp_path)
    assert refused.code == 4
    assert "needs the admin role; daemon (uid 1, user, socket) is a user" in refused.err
    assert "members of group 'nogroup'" in refused.err  # says who the admins are
    assert daemon_devices(via_daemon) == before
