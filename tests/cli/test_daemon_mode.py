"""The CLI against a real daemon: which way each invocation goes, and the lease verbs.

The daemon (``tests/cli/conftest.py``) serves a simulated H100 with 7 x 1g.10gb; the CLI runs
in this process without ``--sim``, so every MIG device it shows or leases can only have come
from the daemon (this process's own simulator state, ``MIGCTL_SIM_DIR``, is a fresh machine).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from migctl.client.http import error_from_body
from migctl.errors import EXIT_INTERNAL
from migctl.node.leaser import REMOTE_RUN_TTL_S
from migctl.schemas.leases import LeaseOut
from tests.cli.conftest import Result, daemon_devices, migctl
from tests.server.daemon import Daemon

Capsys = pytest.CaptureFixture[str]


def uuids_listed(result: Result) -> list[str]:
    assert result.code == 0, result.err
    return [d["uuid"] for gpu in result.json()["gpus"] for d in gpu["mig_devices"]]


# -- which way ---------------------------------------------------------------------------


def test_migctl_url_sends_list_to_the_daemon_and_v_says_so(
    via_daemon: Daemon, capsys: Capsys
) -> None:
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert uuids_listed(result) == daemon_devices(via_daemon)
    assert f"through the daemon at unix:{via_daemon.socket_path} (MIGCTL_URL)" in result.err
    gpu = result.json()["gpus"][0]
    assert gpu["pci_device_id"] == "0x2330"  # the simulated H100 SXM5's, as NVML reports it
    assert gpu["pci_bus_id"] and gpu["uuid"].startswith("GPU-")


def test_nothing_extra_is_printed_without_v(via_daemon: Daemon, capsys: Capsys) -> None:
    result = migctl(capsys, "-o", "json", "list")
    assert result.code == 0 and result.err == ""


def test_a_daemon_on_the_default_socket_is_found(
    cli_daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_SOCKET", str(cli_daemon.socket_path))
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert uuids_listed(result) == daemon_devices(cli_daemon)
    assert "found on the default socket" in result.err


def test_without_a_daemon_socket_the_cli_stays_local_and_a_stale_one_is_an_error(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_SOCKET", str(tmp_path / "nobody-listens.sock"))
    result = migctl(capsys, "-v", "--sim", "h100-single", "-o", "json", "list")
    assert uuids_listed(result) == []  # the fresh local simulator: MIG off
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert result.code in {0, 9}, result.err  # the local driver, or none (exit 9)
    assert "local: no daemon socket at" in result.err
    (tmp_path / "nobody-listens.sock").touch()  # a stale file: a daemon was here
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert result.code == 10, result.err
    assert "but no daemon answers there" in result.err and "--local" in result.err


def test_sim_stays_local_even_when_a_daemon_runs(
    cli_daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_SOCKET", str(cli_daemon.socket_path))
    result = migctl(capsys, "-v", "--sim", "h100-single", "-o", "json", "list")
    assert uuids_listed(result) == []
    assert "local: --sim h100-single" in result.err


def test_local_overrides_migctl_url(
    via_daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = migctl(capsys, "-v", "--local", "--sim", "h100-single", "-o", "json", "list")
    assert uuids_listed(result) == []
    assert "local: --local" in result.err
    monkeypatch.setenv("MIGCTL_LOCAL", "1")
    assert uuids_listed(migctl(capsys, "--sim", "h100-single", "-o", "json", "list")) == []


def test_sim_and_migctl_url_together_are_a_usage_error(via_daemon: Daemon, capsys: Capsys) -> None:
    result = migctl(capsys, "--sim", "h100-single", "list")
    assert result.code == 2
    assert "contradict" in result.err and "--local" in result.err


def test_an_unreachable_migctl_url_is_an_error_not_a_fallback(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_URL", f"unix://{tmp_path}/missing.sock")
    result = migctl(capsys, "-o", "json", "list")
    assert result.code == 10
    assert "cannot reach the migctl daemon" in result.err


def test_a_bad_migctl_url_is_a_usage_error(capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_URL", "ftp://example")
    result = migctl(capsys, "list")
    assert result.code == 2 and "unix:///" in result.err


def test_verbs_without_a_daemon_form_refuse_clearly(via_daemon: Daemon, capsys: Capsys) -> None:
    """Only the verbs that describe the GPU host's own device files stay there."""
    for argv in (["cdi", "generate"], ["slurm", "gres"]):
        result = migctl(capsys, *argv)
        assert result.code == 7, (argv, result.err)
        assert "no daemon form" in result.err and "--local" in result.err


def test_offline_verbs_need_no_daemon(via_daemon: Daemon, capsys: Capsys) -> None:
    result = migctl(capsys, "-o", "json", "plan", "--model", "h100-80gb-hbm3", "--split", "7")
    assert result.code == 0, result.err
    assert len(result.json()["plans"][0]["final"]) == 7


# -- leases ------------------------------------------------------------------------------


def daemon_lease(daemon: Daemon, lease_id: int) -> dict[str, object]:
    with daemon.client() as root:
        found: dict[str, object] = root.get(f"/v1/leases/{lease_id}").json()
    return found


def test_lease_acquire_goes_to_the_daemon_with_the_local_json_shape(
    via_daemon: Daemon, capsys: Capsys
) -> None:
    result = migctl(capsys, "-o", "json", "lease", "acquire", "-p", "1g.10gb", "-j", "train")
    assert result.code == 0, result.err
    lease = result.json()["lease"]
    assert set(lease) == set(LeaseOut.model_fields)  # one lease shape, here and locally
    assert lease["uuid"] in daemon_devices(via_daemon)
    assert result.json()["environment"]["CUDA_VISIBLE_DEVICES"] == lease["uuid"]
    seen = daemon_lease(via_daemon, lease["lease_id"])
    assert (seen["job"], seen["user"], seen["active"]) == ("train", "root", True)


def test_lease_list_release_and_renew_through_the_daemon(
    via_daemon: Daemon, capsys: Capsys
) -> None:
    acquired = migctl(capsys, "-o", "json", "lease", "acquire", "-p", "1g.10gb", "--ttl", "5m")
    lease_id = acquired.json()["lease"]["lease_id"]
    listed = migctl(capsys, "-o", "json", "lease", "list").json()["leases"]
    assert [lease["lease_id"] for lease in listed] == [lease_id]
    assert "1g.10gb" in migctl(capsys, "lease", "list").out
    renewed = migctl(capsys, "-o", "json", "lease", "renew", str(lease_id), "--ttl", "1h")
    assert renewed.code == 0 and renewed.json()["lease"]["ttl_seconds"] == 3600
    released = migctl(capsys, "-o", "json", "lease", "release", str(lease_id))
    assert released.json()["lease"]["end_reason"] == "released"
    assert daemon_lease(via_daemon, lease_id)["active"] is False
    again = migctl(capsys, "lease", "release", str(lease_id))
    assert again.code == 10 and "already ended" in again.err  # as the local store says
    history = migctl(capsys, "-o", "json", "lease", "list", "--all").json()["leases"]
    assert any(lease["lease_id"] == lease_id for lease in history)


def test_someone_elses_lease_needs_admin_to_release(
    via_daemon: Daemon, user_tokens: dict[str, str], capsys: Capsys
) -> None:
    with via_daemon.tcp(user_tokens["alice"]) as alice:
        theirs = alice.post("/v1/leases", json={"profile": "1g.10gb", "job": "a"}).json()
    refused = migctl(capsys, "lease", "release", str(theirs["lease_id"]))
    assert refused.code == 4 and "belongs to alice" in refused.err
    done = migctl(capsys, "-o", "json", "lease", "release", "--admin", str(theirs["lease_id"]))
    assert done.code == 0 and done.json()["lease"]["end_reason"] == "revoked"


def test_other_users_leases_are_shown_without_owner(
    as_alice: Daemon, user_tokens: dict[str, str], capsys: Capsys
) -> None:
    with as_alice.tcp(user_tokens["bob"]) as bob:
        bobs = bob.post("/v1/leases", json={"profile": "1g.10gb", "job": "secret"}).json()
    listed = migctl(capsys, "-o", "json", "lease", "list").json()["leases"]
    shown = next(lease for lease in listed if lease["lease_id"] == bobs["lease_id"])
    assert (shown["user"], shown["job"], shown["redacted"]) == (None, None, True)
    status = migctl(capsys, "-o", "json", "status").json()
    holders = [d["lease"] for gi in status["gpus"][0]["gpu_instances"] for d in gi["mig_devices"]]
    held = next(h for h in holders if h and h["lease_id"] == bobs["lease_id"])
    assert (held["user"], held["job"], held["redacted"]) == (None, None, True)
    assert "secret" not in migctl(capsys, "status").out
    assert "another user" in migctl(capsys, "lease", "list").out


def test_nothing_free_fails_like_the_local_store(via_daemon: Daemon, capsys: Capsys) -> None:
    for _ in range(7):
        assert migctl(capsys, "lease", "acquire", "-p", "1g.10gb").code == 0
    result = migctl(capsys, "-o", "json", "lease", "acquire", "-p", "1g.10gb")
    assert result.code == 5, result.err  # insufficient resources, as locally
    assert '"insufficient_resources"' in result.err


def test_create_is_refused_to_a_user_through_the_daemon(as_alice: Daemon, capsys: Capsys) -> None:
    """A lease that would create a MIG device changes the GPUs: only an admin may."""
    before = daemon_devices(as_alice)
    result = migctl(capsys, "lease", "acquire", "-p", "3g.40gb", "--create")
    assert result.code in {4, 7}, result.err
    assert daemon_devices(as_alice) == before


def test_env_follows_the_holder_process(via_daemon: Daemon, capsys: Capsys) -> None:
    holder = subprocess.Popen(["sleep", "60"])
    try:
        result = migctl(capsys, "env", "-p", "1g.10gb", "--pid", str(holder.pid))
        assert result.code == 0, result.err
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in result.out.splitlines()
        )
        lease_id = int(exports["MIGCTL_LEASE_ID"])
        assert exports["CUDA_VISIBLE_DEVICES"] in daemon_devices(via_daemon)
        assert daemon_lease(via_daemon, lease_id)["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 30
    while daemon_lease(via_daemon, lease_id)["active"]:  # the daemon's reaper ends it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert daemon_lease(via_daemon, lease_id)["end_reason"] == "holder-died"


def test_docker_args_for_a_daemon_lease(via_daemon: Daemon, capsys: Capsys) -> None:
    lease = migctl(capsys, "-o", "json", "lease", "acquire", "-p", "1g.10gb").json()["lease"]
    result = migctl(capsys, "-o", "json", "docker-args", "--lease", str(lease["lease_id"]))
    assert result.code == 0, result.err
    assert result.json()["argv"]["env"][-1] == f"NVIDIA_VISIBLE_DEVICES={lease['uuid']}"
    missing = migctl(capsys, "docker-args", "--device", "MIG-00000000-0000-0000-0000-000000000000")
    assert missing.code == 3


def test_run_over_tcp_leases_with_a_ttl_instead_of_a_pid(
    as_alice: Daemon, capsys: Capsys, tmp_path: Path
) -> None:
    out = tmp_path / "seen.txt"
    script = f"echo $CUDA_VISIBLE_DEVICES $MIGCTL_LEASE_ID > {out}"
    result = migctl(capsys, "run", "-p", "1g.10gb", "--", "sh", "-c", script)
    assert result.code == 0, result.err
    uuid, lease_id = out.read_text().split()
    lease = daemon_lease(as_alice, int(lease_id))
    assert (lease["uuid"], lease["user"], lease["pid"]) == (uuid, "alice", None)
    assert lease["ttl_seconds"] == REMOTE_RUN_TTL_S  # ends by itself if migctl dies
    assert lease["end_reason"] == "released"


def test_top_once_through_the_daemon(via_daemon: Daemon, capsys: Capsys) -> None:
    result = migctl(capsys, "top", "--once")
    assert result.code == 0, result.err
    assert "simulated h100-single" in result.out  # the daemon's machine
    assert all(uuid in result.out for uuid in daemon_devices(via_daemon))


def test_tokens_over_tcp_are_checked_like_any_permission(
    cli_daemon: Daemon, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_URL", f"http://127.0.0.1:{cli_daemon.port}")
    anonymous = migctl(capsys, "-o", "json", "lease", "list")
    assert anonymous.code == 4 and '"unauthenticated"' in anonymous.err
    monkeypatch.setenv("MIGCTL_TOKEN", "migctl_nosuch_token")
    assert migctl(capsys, "lease", "list").code == 4


def test_a_daemon_bug_exits_like_a_local_bug() -> None:
    body: dict[str, object] = {
        "error": "internal",
        "message": "boom",
        "hint": None,
        "exit_code": 70,
        "context": {},
    }
    assert error_from_body(body, 500).exit_code == EXIT_INTERNAL


def test_priority_goes_to_the_daemon_which_caps_it_for_users(
    as_alice: Daemon, capsys: Capsys
) -> None:
    refused = migctl(capsys, "lease", "acquire", "-p", "1g.10gb", "--priority", "50")
    assert refused.code == 4 and "priority 50 is above 10" in refused.err
    assert "mine" not in refused.out
    granted = migctl(capsys, "-o", "json", "lease", "acquire", "-p", "1g.10gb", "--priority", "7")
    assert granted.code == 0, granted.err
    assert "no effect" not in granted.err


@pytest.mark.parametrize(
    ("option", "value"), [("--wait", "2h"), ("--ttl", "40d")], ids=["wait", "ttl"]
)
def test_wait_and_ttl_beyond_the_request_bounds_are_usage_errors_both_ways(
    via_daemon: Daemon, capsys: Capsys, tmp_path: Path, option: str, value: str
) -> None:
    """A lease request waits at most an hour and lasts at most 30 days (``LeaseRequest``): the
    CLI says so naming the option, exit 2, before asking anyone; locally it once waited or
    leased anyway, and the daemon answered exit 11 naming the wire field."""
    db = str(tmp_path / "leases.db")
    local = ("--local", "--sim", "h100-single")
    assert migctl(capsys, *local, "split", "2").code == 0
    remote = migctl(capsys, "lease", "acquire", "-p", "1g.10gb", option, value)
    here = migctl(
        capsys, *local, "lease", "acquire", "--lease-db", db, "-p", "3g.40gb", option, value
    )
    for result in (remote, here):
        assert result.code == 2, result.err
        assert f"{option}: " in result.err and "s allowed" in result.err
    with via_daemon.client() as root:
        assert root.get("/v1/leases").json() == []
    listed = migctl(capsys, *local, "-o", "json", "lease", "list", "--lease-db", db)
    assert listed.code == 0 and listed.json()["leases"] == []


def test_priority_is_accepted_locally_with_a_note(capsys: Capsys, tmp_path: Path) -> None:
    db = str(tmp_path / "leases.db")
    local = ("--sim", "h100-single", "lease", "acquire", "--lease-db", db)
    assert migctl(capsys, "--sim", "h100-single", "split", "2").code == 0
    result = migctl(capsys, *local, "--priority", "3")
    assert result.code == 0 and "has no effect here" in result.err
    out_of_range = migctl(capsys, *local, "--priority", "1001")
    assert out_of_range.code == 2 and "1001" in out_of_range.err
