"""Read verbs through a real daemon print what they print locally; changes are the admins'.

``list``, ``mode show``, ``profiles``, ``gi list``, ``ci list``, ``export``, ``assert`` and
``catalog check`` call the same Node method on a ``RemoteNode`` as on a ``LocalNode``. Each is run
twice on the same simulated machine: through the daemon (``MIGCTL_URL``) and directly
(``--local`` on the daemon's simulator state); output and exit code must be identical, as a
table and as JSON. Instance changes through the daemon are admin jobs; a user is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Result, apply_split, daemon_devices, migctl
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
    counts = {
        p["profile"]["name"]: (p["free"], p["total"])
        for p in result.json()["gpus"][0]["gi_profiles"]
    }
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
def test_a_user_cannot_change_instances_through_the_daemon(
    as_alice: Daemon, capsys: Capsys, argv: list[str]
) -> None:
    before = daemon_devices(as_alice)
    result = migctl(capsys, *argv)
    assert result.code == 4, result.err
    assert "needs the admin role" in result.err
    assert daemon_devices(as_alice) == before


@pytest.fixture
def restore_seven(cli_daemon: Daemon) -> Iterator[None]:
    yield
    apply_split(cli_daemon, 7)


def test_an_admin_changes_instances_through_the_daemon(
    via_daemon: Daemon, capsys: Capsys, restore_seven: None
) -> None:
    destroyed = migctl(capsys, "-o", "json", "gi", "destroy", "--id", "7", "-i", "0")
    assert destroyed.code == 0, destroyed.err
    assert destroyed.json()["destroyed"] == [{"gpu": 0, "gi_id": None, "ids": [7]}]
    assert len(daemon_devices(via_daemon)) == 6
    created = migctl(capsys, "-o", "json", "gi", "create", "1g.10gb", "-C", "-i", "0")
    assert created.code == 0, created.err
    [gi] = created.json()["gpu_instances"]
    assert (gi["gpu_index"], gi["profile"]) == (0, "1g.10gb")
    assert len(daemon_devices(via_daemon)) == 7
