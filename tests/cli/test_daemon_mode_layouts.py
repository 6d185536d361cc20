"""``plan``, ``apply``, ``split``, ``mode`` and ``metrics`` through a real daemon.

Admins (root on the socket) change layouts through daemon jobs and get the local outcome shape;
users (a user token over TCP) may plan but get exit 4 with a clear message for every change.
Local shapes are taken from the same verbs run with ``--local --sim`` in this process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import apply_split, daemon_devices, migctl
from tests.server.daemon import Daemon

Capsys = pytest.CaptureFixture[str]
LAYOUT = """\
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


@pytest.fixture
def restore_seven(cli_daemon: Daemon) -> Iterator[None]:
    """Tests that repartition put the 7 x 1g.10gb back for the next one."""
    yield
    apply_split(cli_daemon, 7)


def local_json(capsys: Capsys, *argv: str) -> dict[str, object]:
    result = migctl(capsys, "--local", "--sim", "h100-single", "-o", "json", *argv)
    assert result.code == 0, result.err
    found: dict[str, object] = result.json()
    return found


def test_plan_through_the_daemon_changes_nothing(via_daemon: Daemon, capsys: Capsys) -> None:
    before = daemon_devices(via_daemon)
    result = migctl(capsys, "-o", "json", "plan", "--split", "3")
    assert result.code == 0, result.err
    plan = result.json()["plans"][0]
    local = local_json(capsys, "plan", "--split", "3")["plans"]
    assert set(plan) == set(local[0])  # type: ignore[index]
    assert plan["summary"]["destroy_gi"] == 7 and plan["summary"]["create_gi"] == 3
    shown = migctl(capsys, "plan", "--split", "3").out
    assert "before:" in shown and "after:" in shown and "destroy GPU instance 7" in shown
    assert daemon_devices(via_daemon) == before


def test_apply_dry_run_has_the_local_shape_and_changes_nothing(
    via_daemon: Daemon, capsys: Capsys
) -> None:
    before = daemon_devices(via_daemon)
    result = migctl(capsys, "-o", "json", "apply", "--split", "3", "--dry-run")
    assert result.code == 0, result.err
    outcome = result.json()
    assert set(outcome) == set(local_json(capsys, "apply", "--split", "3", "--dry-run"))
    assert outcome["dry_run"] is True and outcome["executed"] == {}
    disturbs = outcome["disturbs"]["0"]  # the seven 1g devices go, each named with its users
    assert len(disturbs) == 7 and all("idle" in line or "lease" in line for line in disturbs)
    named = sorted(uuid for uuid in before if any(uuid in line for line in disturbs))
    assert named == sorted(before)
    shown = migctl(capsys, "apply", "--split", "3", "--dry-run").out
    assert "dry run" in shown and shown.count("disturbs") == 7
    assert daemon_devices(via_daemon) == before


def test_an_unprivileged_user_gets_exit_4_for_every_change(
    as_alice: Daemon, capsys: Capsys
) -> None:
    before = daemon_devices(as_alice)
    refused = migctl(capsys, "apply", "--split", "3")
    assert refused.code == 4
    assert "POST /v1/apply needs the admin role" in refused.err
    assert "alice (token alice, user) is a user" in refused.err
    as_json = migctl(capsys, "-o", "json", "split", "3")
    assert as_json.code == 4 and '"permission_denied"' in as_json.err
    assert migctl(capsys, "mode", "disable", "-i", "0").code == 4
    assert migctl(capsys, "plan", "--split", "3").code == 0  # planning is for everyone
    assert daemon_devices(as_alice) == before


def test_apply_as_admin_then_again_is_a_noop(
    via_daemon: Daemon, capsys: Capsys, restore_seven: None
) -> None:
    result = migctl(capsys, "-o", "json", "apply", "--split", "3")
    assert result.code == 0, result.err
    outcome = result.json()
    assert set(outcome) == set(local_json(capsys, "apply", "--split", "3", "--dry-run"))
    assert outcome["noop"] is False
    assert outcome["executed"] == {"0": len(outcome["plans"][0]["ops"])}  # all done
    assert len(daemon_devices(via_daemon)) == 3
    again = migctl(capsys, "apply", "--split", "3")
    assert again.code == 0 and "nothing to do" in again.out
    back = migctl(capsys, "split", "7")
    assert back.code == 0, back.err
    assert len(daemon_devices(via_daemon)) == 7


def test_apply_a_layout_file_through_the_daemon(
    via_daemon: Daemon, capsys: Capsys, tmp_path: Path, restore_seven: None
) -> None:
    layout = tmp_path / "halves.yaml"
    layout.write_text(LAYOUT)
    result = migctl(capsys, "apply", "-f", str(layout), "-c", "halves", "-i", "0")
    assert result.code == 0, result.err
    with via_daemon.client() as root:
        gis = root.get("/v1/inventory").json()["gpus"][0]["gpu_instances"]
    assert sorted((gi["profile"], gi["placement"]["start"]) for gi in gis) == [
        ("3g.40gb", 0),
        ("3g.40gb", 4),
    ]


def test_a_busy_device_stops_an_apply_like_locally(via_daemon: Daemon, capsys: Capsys) -> None:
    assert migctl(capsys, "lease", "acquire", "-p", "1g.10gb").code == 0
    before = daemon_devices(via_daemon)
    result = migctl(capsys, "-o", "json", "apply", "--split", "3")
    assert result.code == 6, result.err  # in use, as the local engine refuses it
    assert '"in_use"' in result.err
    assert daemon_devices(via_daemon) == before


def test_hooks_and_read_only_are_refused_before_anything_runs(
    via_daemon: Daemon, capsys: Capsys, tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks.yaml"
    marker = tmp_path / "ran"
    hooks.write_text(f'before-apply: ["touch {marker}"]\n')
    result = migctl(capsys, "apply", "--split", "3", "--hooks", str(hooks))
    assert result.code == 7 and "--hooks" in result.err
    assert not marker.exists()
    assert migctl(capsys, "--read-only", "apply", "--split", "3").code == 8
    assert migctl(capsys, "--read-only", "mode", "enable").code == 8
    assert len(daemon_devices(via_daemon)) == 7


def test_mode_through_the_daemon(via_daemon: Daemon, capsys: Capsys, restore_seven: None) -> None:
    shown = migctl(capsys, "-o", "json", "mode", "show").json()["gpus"][0]
    assert shown["mig"] == {"current": True, "pending": True}
    assert shown["pci_device_id"] == "0x2330"  # the inventory carries it
    disabled = migctl(capsys, "-o", "json", "mode", "disable", "--force")
    assert disabled.code == 0, disabled.err
    change = disabled.json()["changes"][0]
    assert (change["requested"], change["current"], change["done"]) == ("disabled", False, True)
    assert daemon_devices(via_daemon) == []
    enabled = migctl(capsys, "mode", "enable")
    assert enabled.code == 0 and "GPU 0: MIG enabled" in enabled.out


def mode_disable_refusal(capsys: Capsys, *where: str) -> dict[str, Any]:
    refused = migctl(capsys, *where, "-o", "json", "mode", "disable", "-i", "0")
    assert refused.code == 6, refused.err
    assert "Traceback" not in refused.err
    error: dict[str, Any] = json.loads(refused.err.strip().splitlines()[-1])
    return error


def test_mode_disable_means_the_same_locally_and_through_the_daemon(
    via_daemon: Daemon,
    capsys: Capsys,
    restore_seven: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused while GPU instances exist (exit 6, naming them) both ways; --force both ways."""
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    local = ("--local", "--sim", "h100-single")
    assert migctl(capsys, *local, "mode", "enable", "-i", "0").code == 0
    assert migctl(capsys, *local, "split", "7", "-i", "0").code == 0
    before = daemon_devices(via_daemon)
    with via_daemon.client() as root:
        jobs_before = root.get("/v1/jobs").json()

    remote = mode_disable_refusal(capsys)
    here = mode_disable_refusal(capsys, *local)
    assert remote == here  # one rule, one message
    assert remote["error"] == "in_use" and remote["context"]["gpu_instances"] == list(range(7, 14))
    assert remote["message"].startswith("GPU 0 (NVIDIA H100 80GB HBM3): cannot disable MIG mode")
    assert "1g.10gb at 0:1" in remote["message"] and "--force" in remote["hint"]
    assert daemon_devices(via_daemon) == before  # nothing destroyed, no job made
    with via_daemon.client() as root:
        assert root.get("/v1/jobs").json() == jobs_before
        api = root.post("/v1/mig-mode", json={"gpus": "0", "enabled": False, "force": False})
        assert api.status_code == 409 and api.json()["error"] == "in_use"  # before any job

    for where in ((), local):
        forced = migctl(capsys, *where, "-o", "json", "mode", "disable", "-i", "0", "--force")
        assert forced.code == 0, forced.err
        assert forced.json()["changes"][0]["done"] is True
    assert daemon_devices(via_daemon) == []
    listed = migctl(capsys, *local, "-o", "json", "mode", "show").json()["gpus"][0]
    assert listed["mig"] == {"current": False, "pending": False}


def test_metrics_come_from_the_daemon(via_daemon: Daemon, capsys: Capsys) -> None:
    with via_daemon.client() as root:
        served = root.get("/metrics")
    result = migctl(capsys, "metrics")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == served.text.splitlines()[0]
