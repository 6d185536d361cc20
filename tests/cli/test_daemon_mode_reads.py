"""Read verbs through a real daemon print what they print locally, and changes still refuse.

``profiles``, ``gi list``, ``ci list``, ``export``, ``assert`` and ``catalog check`` read the GPUs through
``cli.remote_reader`` when a daemon owns them. Each is run twice on the same simulated machine:
through the daemon (``MIGCTL_URL``) and directly (``--local`` on the daemon's simulator
state); output and exit code must be identical, as a table and as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migctl.cli.remote_reader import DaemonReader
from migctl.errors import NotSupportedError
from migctl.server.client import error_from_body
from tests.cli.conftest import Result, daemon_devices, migctl
from tests.server.daemon import Daemon

Capsys = pytest.CaptureFixture[str]
HALVES = """\
apiVersion: migctl/v1
kind: Layouts
layouts:
  halves:
    gpus:
      - select: all
        mig: true
        instances:
          - profile: 3g.40gb
            count: 2
"""
READS = (
    ["list"],
    ["mode", "show"],
    ["profiles"],
    ["profiles", "--placements", "-i", "0"],
    ["gi", "list"],
    ["ci", "list"],
    ["ci", "list", "--gi", "7"],
    ["profiles", "--ci", "7", "-i", "0"],
    ["export"],
    ["export", "--format", "mig-parted"],
    ["catalog", "check"],
)


def both(
    daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[Result, Result]:
    """The same command through the daemon and directly on the daemon's simulated GPUs."""
    remote = migctl(capsys, *argv)
    with monkeypatch.context() as local_env:
        local_env.setenv("MIGCTL_SIM_DIR", str(daemon.sim_dir))
        local = migctl(capsys, "--local", "--sim", "h100-single", *argv)
    return remote, local


@pytest.mark.parametrize("argv", READS, ids=" ".join)
@pytest.mark.parametrize("output", ["table", "json"])
def test_a_read_verb_prints_through_the_daemon_what_it_prints_locally(
    via_daemon: Daemon,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    output: str,
) -> None:
    remote, local = both(via_daemon, capsys, monkeypatch, "-o", output, *argv)
    assert remote.code == 0, remote.err
    assert (remote.code, remote.out) == (local.code, local.out)
    assert remote.out.strip()


def test_profiles_show_the_free_counts_the_driver_reports(
    via_daemon: Daemon, capsys: Capsys
) -> None:
    result = migctl(capsys, "-o", "json", "profiles", "-i", "0")
    counts = {p["name"]: (p["free"], p["total"]) for p in result.json()["gpus"][0]["profiles"]}
    assert counts["1g.10gb"] == (0, 7)  # the fixture split GPU 0 into seven 1g.10gb
    assert counts["7g.80gb"] == (0, 1)


def test_assert_through_the_daemon_matches_local(
    via_daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exported = tmp_path / "now.yaml"
    exported.write_text(migctl(capsys, "export").out)
    remote, local = both(via_daemon, capsys, monkeypatch, "assert", "-f", str(exported))
    assert remote.code == local.code == 0, remote.err
    assert remote.out == local.out and "matches" in remote.out
    halves = tmp_path / "halves.yaml"
    halves.write_text(HALVES)
    remote, local = both(via_daemon, capsys, monkeypatch, "-o", "json", "assert", "-f", str(halves))
    assert remote.code == local.code == 1
    assert remote.json() == local.json() and remote.json()["matches"] is False


def test_a_user_token_reads_profiles_too(as_alice: Daemon, capsys: Capsys) -> None:
    result = migctl(capsys, "-o", "json", "gi", "list")
    assert result.code == 0, result.err
    assert len(result.json()["gpu_instances"]) == 7


@pytest.mark.parametrize(
    "argv",
    [
        ["gi", "create", "1g.10gb", "-i", "0"],
        ["gi", "destroy", "--all", "-i", "0"],
        ["ci", "destroy", "--all", "--gi", "7", "-i", "0"],
        ["recover"],
    ],
    ids=" ".join,
)
def test_changes_still_refuse_through_the_daemon_and_change_nothing(
    via_daemon: Daemon, capsys: Capsys, argv: list[str]
) -> None:
    before = daemon_devices(via_daemon)
    result = migctl(capsys, *argv)
    assert result.code == 7, result.err
    assert "no daemon form" in result.err and "--local" in result.err
    assert daemon_devices(via_daemon) == before


class OldDaemon:
    """A daemon client whose daemon predates ``GET /v1/gpus/N/profiles``."""

    where = "unix:/old.sock"

    def request(self, method: str, path: str, **_: Any) -> Any:
        raise error_from_body({"detail": "Not Found"}, 404)  # FastAPI's answer, no migctl body


def test_an_older_daemon_without_profiles_gets_a_clear_message() -> None:
    from migctl.catalog import load_catalog

    reader = DaemonReader(OldDaemon(), load_catalog())  # type: ignore[arg-type]
    with pytest.raises(NotSupportedError, match="does not serve GPU profiles") as caught:
        reader.gi_profiles(0)
    assert caught.value.hint is not None and "upgrade the daemon" in caught.value.hint


def test_the_reader_refuses_every_change_before_calling_the_daemon() -> None:
    from migctl.catalog import load_catalog
    from migctl.model import Placement

    reader = DaemonReader(OldDaemon(), load_catalog())  # type: ignore[arg-type]
    changes: list[Callable[[], object]] = [
        lambda: reader.create_gpu_instance(0, 19, Placement(0, 1)),
        lambda: reader.destroy_gpu_instance(0, 7),
        lambda: reader.create_compute_instance(0, 7, 0, Placement(0, 1)),
        lambda: reader.destroy_compute_instance(0, 7, 0),
        lambda: reader.set_mig_mode(0, False),
    ]
    for change in changes:
        with pytest.raises(NotSupportedError, match="nothing was changed"):
            change()
