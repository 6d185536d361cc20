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


def _stat_line(pid: int, comm: str, state: str, start_ticks: int, parent: int = 4) -> str:
    # Field 4 is the parent's PID; fields 5..21 are filler; field 22 is the start time.
    filler = " ".join(str(n) for n in range(5, 22))
    return f"{pid} ({comm}) {state} {parent} {filler} {start_ticks} 99 100\n"


def _fake_proc(root: Path, pid: int, line: str) -> Path:
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
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


def test_zombie_of_a_live_parent_is_held_until_reaped() -> None:
    pid = _zombie_child()  # our own child: we run, so we are winding it up
    try:
        assert pid_exists(pid)  # kill(pid, 0) succeeds on a zombie
        assert holder_alive(pid, None)  # ... and its parent may still release its lease
        stat = read_proc_stat(pid)
        assert stat is not None and stat.parent_pid == os.getpid()
    finally:
        os.waitpid(pid, 0)
    assert not pid_exists(pid)
    assert not holder_alive(pid, None)  # reaped: gone for good


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
    assert stat is not None and (stat.state, stat.parent_pid, stat.start_ticks) == ("S", 4, 123456)


@pytest.mark.parametrize("line", ["", "77 (short) S 1 2 3\n", "77 (bad) S" + " x" * 30])
def test_unreadable_stat_lines_give_none(tmp_path: Path, line: str) -> None:
    assert read_proc_stat(77, _fake_proc(tmp_path, 77, line)) is None


def test_hidden_proc_entry_of_an_existing_pid_counts_as_alive(tmp_path: Path) -> None:
    # hidepid: /proc/<pid> is invisible but kill(pid, 0) says the process exists.
    assert holder_alive(os.getpid(), 12345, proc=tmp_path)


def test_dead_states_from_proc(tmp_path: Path) -> None:
    me, parent = os.getpid(), os.getppid()
    for state, alive in (("S", True), ("R", True), ("D", True), ("X", False)):
        proc = tmp_path / state
        _fake_proc(proc, me, _stat_line(me, "job", state, 500, parent=parent))
        assert holder_alive(me, 500, proc=proc) is alive, state


def _zombie_under(tmp_path: Path, name: str, parent: int, parent_state: str | None) -> Path:
    """A fake /proc where this process is a zombie whose parent is ``parent``."""
    me, proc = os.getpid(), tmp_path / name
    _fake_proc(proc, me, _stat_line(me, "job", "Z", 500, parent=parent))
    if parent_state is not None:
        _fake_proc(proc, parent, _stat_line(parent, "sh", parent_state, 400, parent=1))
    return proc


def test_zombie_counts_as_alive_only_while_a_live_parent_will_collect_it(tmp_path: Path) -> None:
    parent = os.getppid()  # a real, running process (pytest's parent)
    assert holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "live", parent, "S"))
    assert not holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "zp", parent, "Z"))
    assert not holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "xp", parent, "X"))
    # PID 1 is an init that has not reaped it yet, or (a container's non-init PID 1) never will.
    assert not holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "init", 1, "S"))
    # A parent hidden from /proc counts as running when the kernel says it exists.
    assert holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "hidden", parent, None))


def test_zombie_whose_parent_is_gone_is_dead(tmp_path: Path) -> None:
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)  # a PID that no longer exists
    assert not holder_alive(os.getpid(), 500, proc=_zombie_under(tmp_path, "gone", gone, None))


def test_recycled_pid_of_a_zombie_is_still_another_process(tmp_path: Path) -> None:
    proc = _zombie_under(tmp_path, "recycled", os.getppid(), "S")
    assert not holder_alive(os.getpid(), 501, proc=proc)
