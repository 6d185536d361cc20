"""atomic_write: a writer killed mid-write leaves a temporary file; the next write removes it.

The kill is real (SIGKILL from inside the rename step of a child process), so the test sees
exactly what a crash leaves on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.files import atomic_write

KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from migctl.files import atomic_write

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = die  # the crash comes after the temporary file is written, before the rename
    atomic_write(Path(sys.argv[1]), "new content")
    """
)


def leftovers(directory: Path, target: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{target}."))


def killed_write(target: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target)], check=False, capture_output=True
    )
    assert child.returncode == -9, child.stderr


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    atomic_write(target, "old")
    for _ in range(3):
        killed_write(target)
        assert len(leftovers(tmp_path, target.name)) == 1  # the last crash's only
        assert target.read_text() == "old"  # never half a file
    atomic_write(target, "newer")
    assert target.read_text() == "newer"
    assert leftovers(tmp_path, target.name) == []


@pytest.fixture
def live_process() -> Iterator[int]:
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path, live_process: int) -> None:
    from migctl.files import TEMP_SUFFIX

    target = tmp_path / "state.json"
    writing = tmp_path / f".state.json.{live_process}.abcd1234{TEMP_SUFFIX}"
    writing.write_text("half")
    other_target = tmp_path / f".other.json.999999999.abcd1234{TEMP_SUFFIX}"
    other_target.write_text("not ours to judge")
    atomic_write(target, "x")
    assert writing.exists() and other_target.exists()


def test_old_style_leftovers_go_once_they_are_old(tmp_path: Path) -> None:
    target = tmp_path / "cdi.yaml"
    stale, fresh = tmp_path / ".cdi.yaml.k2j4h5g6", tmp_path / ".cdi.yaml.a1b2c3d4"
    for leftover in (stale, fresh):
        leftover.write_text("half")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    atomic_write(target, "spec")
    assert not stale.exists() and fresh.exists()
