"""``migctl fleet``: bad input is refused with a clear message and its exit code, nothing runs.

An unreachable scheduler is exit 10 naming it; a bad count or policy value exit 11 naming the
setting; a daemon and a simulated machine at once, or soft shares past 100%, exit 2; a scheduler with no controller yet
exit 3 saying how to start one. A view asked as JSON is the controller's in the envelope.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from distributed import Scheduler

from migctl.cli.main import run
from migctl.fleet.plugin import FleetPlugin
from migctl.fleet.policy import Policy
from migctl.fleet.registry import EXTENSION
from migctl.schemas.base import SCHEMA

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


@pytest.mark.parametrize(
    ("shares", "said"), [(("60", "50"), "sum to 110%"), (("0",), "from 1 to 100")]
)
def test_bad_soft_shares_are_usage_errors(
    capsys: pytest.CaptureFixture[str], shares: tuple[str, ...], said: str
) -> None:
    capsys.readouterr()
    argv = ["--sim", "l40s-node", "fleet", "agent", "--scheduler", "tcp://127.0.0.1:9"]
    code = run([*argv, *(f"--soft-share={share}" for share in shares)])
    err = capsys.readouterr().err
    assert code == 2 and "--soft-share" in err and said in err, err


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


def test_status_as_json_is_the_fleet_view_in_the_envelope(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``-o json fleet status``: the controller's view as a ``migctl/v2`` document."""

    async def scenario() -> tuple[int, str, str]:
        plugin = FleetPlugin(policy=Policy(cycle_s=0.05), agents=False, standby=False)
        async with Scheduler(
            host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0"
        ) as scheduler:
            await scheduler.register_scheduler_plugin(plugin, idempotent=False)
            registry = scheduler.extensions[EXTENSION]
            for _ in range(200):  # until the first cycle has published a view
                if registry.status() is not None:
                    break
                await asyncio.sleep(0.05)
            capsys.readouterr()
            code = await asyncio.to_thread(
                run, ["-o", "json", "fleet", "status", "--scheduler", scheduler.address]
            )
            out, err = capsys.readouterr()
            return code, out, err

    code, out, err = asyncio.run(scenario())
    assert code == 0, err
    document = json.loads(out)
    assert (document["schema"], document["kind"]) == (SCHEMA, "FleetStatus")
    assert document["hosts"] == [] and document["controller"]["mode"] == "plugin"
