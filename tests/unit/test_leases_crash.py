"""Crash safety: SIGKILLed holders do not leak leases; a SIGKILL mid-transaction harms nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from migctl.errors import InUseError
from migctl.leases import (
    Backoff,
    DeviceCandidate,
    DeviceRequest,
    EndReason,
    LeaseOwner,
    LeaseStore,
    rows,
)
from migctl.leases.liveness import read_proc_stat

DEVICES = [DeviceCandidate(f"MIG-{n}", 0, n, 0, "1g.10gb", 9_984, 16) for n in (7, 8)]
FAST = Backoff(initial_s=0.005, max_s=0.05)


def _owner(user: str, pid: int | None = None) -> LeaseOwner:
    return LeaseOwner(user=user, uid=1000, host=os.uname().nodename, pid=pid)


@pytest.fixture
def store(tmp_path: Path) -> LeaseStore:
    return LeaseStore(tmp_path / "leases.db", hostname=os.uname().nodename, backoff=FAST)


@contextmanager
def child(body: Callable[[int], None]) -> Iterator[tuple[int, int]]:
    """Fork a child running ``body(write_fd)``; yields (pid, read_fd); kills it at the end."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)
            body(write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        yield pid, read_fd
    finally:
        os.close(read_fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # already killed and reaped by the test


def _wait_line(read_fd: int, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n"):
        assert time.monotonic() < deadline, "child did not report"
        chunk = os.read(read_fd, 64)
        assert chunk, "child exited before reporting"
        data += chunk
    return data.decode().strip()


def _wait_for_zombie(pid: int) -> None:
    deadline = time.monotonic() + 5
    while (stat := read_proc_stat(pid)) is None or stat.state != "Z":
        assert time.monotonic() < deadline, "killed child did not become a zombie"
        time.sleep(0.005)


def _holder(store: LeaseStore, uuid: str) -> Callable[[int], None]:
    def body(write_fd: int) -> None:
        owner = _owner("alice", pid=os.getpid())
        lease = store.acquire(DeviceRequest(uuid=uuid), owner, DEVICES)
        os.write(write_fd, f"{lease.lease_id}\n".encode())
        time.sleep(60)

    return body


def test_sigkilled_holder_is_reaped_and_its_device_leased_again(store: LeaseStore) -> None:
    with child(_holder(store, "MIG-7")) as (pid, read_fd):
        lease_id = int(_wait_line(read_fd))
        held = store.get("MIG-7")
        assert held is not None and (held.lease_id, held.pid) == (lease_id, pid)
        with pytest.raises(InUseError, match="alice"):
            store.acquire(DeviceRequest(uuid="MIG-7"), _owner("bob"), DEVICES)
        os.kill(pid, signal.SIGKILL)
        _wait_for_zombie(pid)  # not collected yet: its parent (we) may still release the lease
        with pytest.raises(InUseError, match="alice"):
            store.acquire(DeviceRequest(uuid="MIG-7"), _owner("bob"), DEVICES)
        os.waitpid(pid, 0)  # collected without a release: the holder died
        lease = store.acquire(DeviceRequest(uuid="MIG-7"), _owner("bob"), DEVICES)
        assert lease.user == "bob"
    old = store.get_lease(lease_id)
    assert (old.end_reason, old.ended_by) == (EndReason.HOLDER_DIED, "migctl")


def _kill_and_collect(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # as a parent does: a zombie of a live parent still holds its lease


def test_waiting_acquire_gets_the_device_when_its_holder_is_killed(store: LeaseStore) -> None:
    with child(_holder(store, "MIG-8")) as (pid, read_fd):
        _wait_line(read_fd)
        killer = threading.Timer(0.3, _kill_and_collect, (pid,))
        killer.start()
        try:
            lease = store.acquire(
                DeviceRequest(uuid="MIG-8"), _owner("bob"), DEVICES, wait_seconds=10
            )
        finally:
            killer.join()
    assert (lease.uuid, lease.user) == ("MIG-8", "bob")
    assert [x.user for x in store.list_leases()] == ["bob"]


def _check_consistent(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_device = conn.execute(
            "SELECT device_uuid, COUNT(*) FROM leases WHERE ended_at IS NULL GROUP BY device_uuid"
        ).fetchall()
        assert all(count == 1 for _, count in per_device)
    finally:
        conn.close()


def test_sigkill_inside_a_transaction_leaves_a_usable_store(
    store: LeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def body(write_fd: int) -> None:
        original = rows.insert

        def insert_then_hang(*args: Any, **kwargs: Any) -> int:
            lease_id = original(*args, **kwargs)
            os.write(write_fd, f"{lease_id}\n".encode())  # the row is written, not committed
            time.sleep(60)
            return lease_id

        monkeypatch.setattr(rows, "insert", insert_then_hang)
        store.acquire(DeviceRequest(uuid="MIG-7"), _owner("alice", os.getpid()), DEVICES)

    with child(body) as (pid, read_fd):
        _wait_line(read_fd)
        blocked = LeaseStore(store.path, busy_timeout_s=0.05)
        with pytest.raises(InUseError, match="locked"):  # the child holds the write lock
            blocked.acquire(DeviceRequest(), _owner("bob"), DEVICES)
        reader = sqlite3.connect(store.path)  # WAL: readers are not blocked, see no dirty row
        assert reader.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
        reader.close()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    _check_consistent(store.path)
    assert store.list_leases(active_only=False) == []  # the uncommitted lease never existed
    lease = store.acquire(DeviceRequest(uuid="MIG-7"), _owner("bob"), DEVICES)
    assert lease.user == "bob" and store.get("MIG-7") == lease


def test_sigkill_at_random_moments_of_a_busy_holder(store: LeaseStore) -> None:
    def churn(write_fd: int) -> None:
        owner = _owner("alice", pid=os.getpid())
        os.write(write_fd, b"go\n")
        while True:
            lease = store.acquire(DeviceRequest(), owner, DEVICES, wait_seconds=5)
            store.renew(lease.lease_id, ttl_seconds=60)
            store.release(lease.lease_id, user="alice")

    for delay_s in (0.013, 0.029, 0.041, 0.067, 0.089):
        with child(churn) as (pid, read_fd):
            _wait_line(read_fd)
            time.sleep(delay_s)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        _check_consistent(store.path)
        assert store.list_leases() == []  # a lease it held is reaped: holder died
    history = store.list_leases(active_only=False)
    assert history and all(not x.active for x in history)
    both = [store.acquire(DeviceRequest(), _owner("bob"), DEVICES) for _ in DEVICES]
    assert sorted(x.uuid for x in both) == ["MIG-7", "MIG-8"]
