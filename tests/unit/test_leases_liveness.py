"""Holder liveness: real processes (alive, exited, zombie, recycled PID) and /proc parsing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from migctl.leases.liveness import (
    holder_alive,
    pid_exists,
    process_start_ticks,
    read_proc_stat,
)


def _stat_line(pid: int, comm: str, state: str, start_ticks: int) -> str:
    # Fields 4..21 are filler; field 22 is the start time.
    filler = " ".join(str(n) for n in range(4, 22))
    return f"{pid} ({comm}) {state} {filler} {start_ticks} 99 100\n"


def _fake_proc(root: Path, pid: int, line: str) -> Path:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(line)
    return root


def _zombie_child() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait until the kernel marks it Z, without reaping it
        stat = read_proc_stat(pid)
        if stat is not None and stat.state == "Z":
            return pid
        time.sleep(0.01)
    raise AssertionError("child did not become a zombie")


def test_own_process_is_alive_with_its_start_time() -> None:
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None and ticks > 0
    assert holder_alive(os.getpid(), ticks)
    assert holder_alive(os.getpid(), None)


def test_same_pid_with_another_start_time_is_a_different_process() -> None:
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    assert not holder_alive(os.getpid(), ticks + 1)


def test_zombie_counts_as_dead_and_so_does_the_reaped_child() -> None:
    pid = _zombie_child()
    try:
        assert pid_exists(pid)  # kill(pid, 0) succeeds on a zombie ...
        assert not holder_alive(pid, None)  # ... but it will never use the GPU again
    finally:
        os.waitpid(pid, 0)
    assert not pid_exists(pid)
    assert not holder_alive(pid, None)


def test_killed_child_is_dead() -> None:
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    ticks = process_start_ticks(pid)
    assert ticks is not None and holder_alive(pid, ticks)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not holder_alive(pid, ticks)


@pytest.mark.parametrize("pid", [0, -1])
def test_non_positive_pids_are_never_alive(pid: int) -> None:
    assert not pid_exists(pid)
    assert not holder_alive(pid, None)


def test_comm_with_spaces_and_parentheses_is_parsed(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 77, _stat_line(77, "my (odd) job ) x", "S", 123456))
    stat = read_proc_stat(77, proc)
    assert stat is not None and (stat.state, stat.start_ticks) == ("S", 123456)


@pytest.mark.parametrize("line", ["", "77 (short) S 1 2 3\n", "77 (bad) S" + " x" * 30])
def test_unreadable_stat_lines_give_none(tmp_path: Path, line: str) -> None:
    assert read_proc_stat(77, _fake_proc(tmp_path, 77, line)) is None


def test_hidden_proc_entry_of_an_existing_pid_counts_as_alive(tmp_path: Path) -> None:
    # hidepid: /proc/<pid> is invisible but kill(pid, 0) says the process exists.
    assert holder_alive(os.getpid(), 12345, proc=tmp_path)


def test_dead_states_from_proc(tmp_path: Path) -> None:
    me = os.getpid()
    for state, alive in (("S", True), ("R", True), ("D", True), ("Z", False), ("X", False)):
        proc = tmp_path / state
        _fake_proc(proc, me, _stat_line(me, "job", state, 500))
        assert holder_alive(me, 500, proc=proc) is alive, state
