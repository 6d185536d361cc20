"""``migctl run``'s machinery in-process: the stub child, signal decisions, exit codes, release."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migctl.errors import (
    CommandNotExecutableError,
    CommandNotFoundError,
    InsufficientResourcesError,
)
from migctl.leases import EndReason, Lease, LeaseStore
from migctl.node.leaser import NodeLeaser
from migctl.node.local import LocalNode
from migctl.node.open import open_node
from migctl.schemas.leases import LeaseRequest
from migctl.settings import Settings
from migctl.tenancy.childproc import ABANDONED_EXIT, StubChild
from migctl.tenancy.runner import LeasedHook, RunResult, run_with
from migctl.tenancy.supervise import SI_KERNEL, should_forward

ENV_DUMP = (
    "import json, os, sys; "
    "json.dump({k: v for k, v in os.environ.items()}, open(sys.argv[1], 'w')); "
    "sys.exit(int(sys.argv[2]))"
)


@pytest.fixture
def machine(tmp_path: Path, sim_dir: Path) -> Iterator[LocalNode]:
    """A simulated H100 with two 1g.10gb devices; its lease database in ``tmp_path``."""
    overrides = {"sim": "h100-single", "sim_dir": sim_dir, "lease_db": tmp_path / "leases.db"}
    with open_node(settings=Settings.from_env({}, overrides=overrides)) as node:
        node.set_mode([0], enabled=True)
        node.create_gpu_instances(0, "1g.10gb,1g.10gb", with_ci=True)
        yield node


@pytest.fixture
def store(machine: LocalNode) -> LeaseStore:
    return LeaseStore(machine.settings.lease_db)


def run_leased(
    node: LocalNode,
    command: list[str],
    request: LeaseRequest | None = None,
    *,
    on_leased: LeasedHook | None = None,
) -> RunResult:
    """``migctl run``'s path: one NodeLeaser over the node."""
    return run_with(NodeLeaser(node, request or LeaseRequest()), command, on_leased=on_leased)


def siginfo(signo: int, code: int, pid: int) -> signal.struct_siginfo:
    return signal.struct_siginfo((signo, code, 0, pid, 0, 0, 0))


def test_exit_code_is_the_shells_view() -> None:
    done = subprocess.run(["sh", "-c", "exit 3"], check=False)
    assert _code_of(["sh", "-c", "exit 3"]) == done.returncode == 3
    assert _code_of(["sh", "-c", "kill -TERM $$"]) == 128 + signal.SIGTERM


def _code_of(argv: list[str]) -> int:
    child = StubChild.spawn(argv)
    child.start({})
    code = child.wait()
    assert child.poll() == code and not child.reaped  # looked at, not yet collected
    child.reap()
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # collected: no zombie left
    return code


def test_forwarding_decision() -> None:
    child = 4242
    assert should_forward(siginfo(signal.SIGTERM, 0, 999), child)  # kill(1) from a process
    assert not should_forward(siginfo(signal.SIGINT, SI_KERNEL, 0), child)  # the terminal
    assert not should_forward(siginfo(signal.SIGUSR1, 0, child), child)  # from the child


def test_stub_runs_the_command_with_the_extra_variables(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    child = StubChild.spawn([sys.executable, "-c", ENV_DUMP, str(out), "4"])
    child.start({"CUDA_VISIBLE_DEVICES": "MIG-abc"})
    assert child.wait() == 4
    child.reap()
    seen = json.loads(out.read_text())
    assert seen["CUDA_VISIBLE_DEVICES"] == "MIG-abc"
    assert seen["PATH"] == os.environ["PATH"]  # the rest of the environment is inherited


def test_stub_reports_a_missing_command_and_is_reaped() -> None:
    child = StubChild.spawn(["no-such-command-anywhere"])
    with pytest.raises(CommandNotFoundError) as caught:
        child.start({})
    assert caught.value.exit_code == 127 and "no-such-command-anywhere" in caught.value.message
    assert child.returncode == 127  # the stub ended; the runner reaps it after releasing
    child.reap()
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)


def test_stub_reports_a_file_that_cannot_be_executed(tmp_path: Path) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    child = StubChild.spawn([str(script)])
    with pytest.raises(CommandNotExecutableError) as caught:
        child.start({})
    assert caught.value.exit_code == 126
    child.reap()


def test_stub_exits_without_running_anything_when_abandoned(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    child = StubChild.spawn(["touch", str(marker)])
    os.close(child._go_fd)  # type: ignore[arg-type]  # what the parent dying amounts to
    child._go_fd = None
    assert child.wait() == ABANDONED_EXIT
    child.reap()
    assert not marker.exists()


def test_run_leased_gives_the_child_the_device_and_releases(
    machine: LocalNode, store: LeaseStore, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    seen: list[tuple[Lease, int]] = []
    result = run_leased(
        machine,
        [sys.executable, "-c", ENV_DUMP, str(out), "0"],
        LeaseRequest(profile="1g.10gb", job="unit"),
        on_leased=lambda lease, pid: seen.append((lease, pid)),
    )
    env = json.loads(out.read_text())
    [(lease, pid)] = seen
    assert result.exit_code == 0 and result.lease == lease
    assert lease.pid == pid and lease.job == "unit"
    assert env["CUDA_VISIBLE_DEVICES"] == env["NVIDIA_VISIBLE_DEVICES"] == lease.uuid
    assert env["MIGCTL_LEASE_ID"] == str(lease.lease_id)
    assert result.released is not None and result.released.end_reason is EndReason.RELEASED
    assert store.list_leases() == []


@dataclass
class SweepingLeaser:
    """Another process's sweep runs right when the command has ended, just before release."""

    inner: NodeLeaser
    store: LeaseStore
    active_at_release: list[Lease] = field(default_factory=list)
    ttl_seconds: float | None = None

    def acquire(self, holder_pid: int) -> Lease:
        return self.inner.acquire(holder_pid)

    def renew(self, lease: Lease) -> None:
        self.inner.renew(lease)

    def release(self, lease: Lease) -> Lease | None:
        self.active_at_release = LeaseStore(self.store.path).list_leases()  # listing reaps
        return self.inner.release(lease)


def test_a_sweep_between_the_commands_end_and_the_release_does_not_end_the_lease(
    machine: LocalNode, store: LeaseStore
) -> None:
    leaser = SweepingLeaser(NodeLeaser(machine, LeaseRequest()), store)
    result = run_with(leaser, ["true"])
    assert [x.lease_id for x in leaser.active_at_release] == [result.lease.lease_id]
    assert result.released is not None and result.released.end_reason is EndReason.RELEASED
    assert result.lease.pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(result.lease.pid, os.WNOHANG)  # reaped once released


def test_run_leased_releases_when_the_command_cannot_start(
    machine: LocalNode, store: LeaseStore
) -> None:
    with pytest.raises(CommandNotFoundError):
        run_leased(machine, ["no-such-cmd"])
    [lease] = store.list_leases(active_only=False)
    assert lease.end_reason is EndReason.RELEASED


def test_run_leased_releases_when_the_hook_fails(
    machine: LocalNode, store: LeaseStore, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    pids: list[int] = []

    def broken(_lease: Lease, pid: int) -> None:
        pids.append(pid)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_leased(machine, ["touch", str(marker)], on_leased=broken)
    assert not marker.exists()  # the command never ran
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)  # and the stub was reaped
    assert [x.end_reason for x in store.list_leases(active_only=False)] == [EndReason.RELEASED]


def test_no_device_no_child_left(machine: LocalNode, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[StubChild] = []
    original = StubChild.spawn

    def spawn(argv: list[str]) -> StubChild:
        spawned.append(original(argv))
        return spawned[-1]

    monkeypatch.setattr(StubChild, "spawn", staticmethod(spawn))
    with pytest.raises(InsufficientResourcesError):
        run_leased(machine, ["true"], LeaseRequest(profile="7g.80gb"))
    [stub] = spawned
    with pytest.raises(ChildProcessError):
        os.waitpid(stub.pid, os.WNOHANG)  # killed and reaped: not even a zombie is left


def test_run_leased_renews_a_ttl_lease_while_the_command_runs(
    machine: LocalNode, store: LeaseStore
) -> None:
    watcher = LeaseStore(store.path)
    active_seen: list[bool] = []
    stop = threading.Event()

    def watch() -> None:  # listing reaps expired leases: a missed renewal would end it
        while not stop.wait(0.2):
            active_seen.append(bool(watcher.list_leases()))

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        result = run_leased(machine, ["sleep", "2.5"], LeaseRequest(ttl_seconds=1.2))
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0
    assert len(active_seen) >= 5 and all(active_seen[:-1])
    assert result.released is not None and result.released.end_reason is EndReason.RELEASED


def test_signals_reach_the_child_through_run_leased(machine: LocalNode, tmp_path: Path) -> None:
    out = tmp_path / "signal"
    script = (
        "import signal, sys, time, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "signal.signal(signal.SIGUSR1, lambda s, f: (p.write_text('usr1'), sys.exit(9)))\n"
        "pathlib.Path(sys.argv[1] + '.ready').write_text('')\n"
        "time.sleep(10)\n"
    )
    me = os.getpid()

    def send_when_ready() -> None:
        # Only the main thread (which runs migctl's loop) may take the signal: block it here.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        for _ in range(200):
            if Path(f"{out}.ready").exists():
                os.kill(me, signal.SIGUSR1)  # to migctl (this process), not to the child
                return
            time.sleep(0.05)

    sender = threading.Thread(target=send_when_ready)
    sender.start()
    result = run_leased(machine, [sys.executable, "-c", script, str(out)])
    sender.join()
    assert result.exit_code == 9 and out.read_text() == "usr1"


def test_a_leaser_that_cannot_follow_the_command_leases_with_a_ttl(machine: LocalNode) -> None:
    """Through a daemon over TCP the lease cannot name the command's process: it gets a TTL
    instead, renewed while the command runs, and no holder PID."""
    from migctl.node.leaser import REMOTE_RUN_TTL_S

    leaser = NodeLeaser(machine, LeaseRequest(profile="1g.10gb"), follows_pids=False)
    assert leaser.ttl_seconds == REMOTE_RUN_TTL_S
    lease = leaser.acquire(os.getpid())
    assert (lease.pid, lease.ttl_seconds) == (None, REMOTE_RUN_TTL_S)
    assert leaser.release(lease) is not None
    assert leaser.release(lease) is None  # already ended: quiet
