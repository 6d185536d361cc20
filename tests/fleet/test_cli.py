"""``migctl fleet``: bad input is refused with a clear message and its exit code, nothing runs.

An unreachable scheduler is exit 10 naming it; a bad count or policy value exit 11 naming the
setting; a daemon and a simulated machine at once exit 2; a scheduler with no controller yet
exit 3 saying how to start one.
"""

from __future__ import annotations

import asyncio

import pytest
from distributed import Scheduler

from migctl.cli.main import run

pytestmark = pytest.mark.timeout(60)


def fleet(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run(["fleet", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return code, err


def test_an_unreachable_scheduler_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = fleet(capsys, "status", "--scheduler", "tcp://127.0.0.1:9", "--timeout", "1")
    assert code == 10 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err


def test_bad_counts_and_policies_name_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = fleet(capsys, "demo", "--hosts", "0")
    assert code == 11 and "--hosts must be from 1 to 8" in err
    code, err = fleet(capsys, "controller", "--scheduler", "tcp://127.0.0.1:9", "--cycle", "-1")
    assert code == 11 and "cycle_s must be a positive number" in err


def test_a_daemon_and_a_simulated_machine_contradict(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = run(["--sim", "h100-single", "fleet", "agent", "--scheduler", "tcp://127.0.0.1:9",
                "--node", "unix:///nowhere.sock"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "contradict" in err


def test_a_scheduler_without_a_controller_says_how_to_start_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def scenario() -> tuple[int, str]:
        async with Scheduler(
            host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0"
        ) as scheduler:
            return await asyncio.to_thread(
                fleet, capsys, "status", "--scheduler", scheduler.address
            )

    code, err = asyncio.run(scenario())
    assert code == 3 and "has no fleet controller" in err and "--preload migctl.fleet.plugin" in err
