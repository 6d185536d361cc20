"""The ``driver`` fixture: each scenario runs through the library, the CLI and the daemon.

``drivers(machine, read_only=False)`` makes a driver of the kind under test for a fresh
simulated ``machine``; the daemon kind starts a real ``migctl serve`` on it for the test (and
stops it after). Test-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.scenarios.drivers import CliDriver, DaemonCliDriver, Driver, LibraryDriver
from tests.server.daemon import Daemon, running

KINDS = ["library", "cli", "daemon"]
MakeDriver = Callable[..., Driver]


@pytest.fixture(params=KINDS)
def drivers(
    request: pytest.FixtureRequest,
    sim_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MakeDriver]:
    """A maker of drivers of one kind (see the module docstring)."""
    kind = str(request.param)
    with ExitStack() as stack:
        daemons: dict[str, Daemon] = {}

        def make(machine: str, read_only: bool = False) -> Driver:
            if kind == "library":
                return LibraryDriver(machine, sim_dir, read_only)
            if kind == "cli":
                return CliDriver(machine, sim_dir, capsys, read_only)
            if machine not in daemons:
                daemons[machine] = stack.enter_context(running(machine))
            return DaemonCliDriver(daemons[machine], capsys, monkeypatch, read_only)

        yield make


@pytest.fixture
def driver(drivers: MakeDriver) -> Driver:
    return drivers("dgx-h100")
