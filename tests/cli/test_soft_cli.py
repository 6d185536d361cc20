"""``--share`` on the command line: ``run``, ``env`` and ``lease acquire`` lease soft devices.

``migctl run`` runs as a separate process (the way users run it), on the simulator; the MPS
daemons and clients are the simulated ones. Every MPS daemon a test started is ended after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import migctl
from migctl.mps.control import DaemonStatus
from migctl.node.open import open_node
from tests.cli.conftest import migctl as migctl_in_process
from tests.unit.soft_nodes import end_daemons

SRC = Path(migctl.__file__).resolve().parents[1]
ENV_CHILD = (
    "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w')); "
    "sys.exit(int(sys.argv[2]))"
)
CLIENT = [sys.executable, "-m", "migctl.sim.mps_client"]
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def machine(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The simulated L40S node for this test (MPS daemons ended afterwards)."""
    monkeypatch.setenv("MIGCTL_SIM", "l40s-node")
    monkeypatch.setenv("MIGCTL_SIM_MPS_LIFETIME_S", "200")
    monkeypatch.delenv("MIGCTL_LEASE_DB", raising=False)
    yield "l40s-node"
    with open_node(sim="l40s-node", sim_dir=sim_dir) as node:
        end_daemons(node)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def run_migctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migctl", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_with_a_share_gives_the_command_its_soft_device(
    machine: str, tmp_path: Path, sim_dir: Path
) -> None:
    out = tmp_path / "env.json"
    done = run_migctl("run", "--share", "25%", "--", sys.executable, "-c", ENV_CHILD, str(out), "3")
    assert done.returncode == 3, done.stderr  # the command's own exit code
    env = json.loads(out.read_text())
    with open_node(sim=machine, sim_dir=sim_dir) as node:
        gpu0 = node.backend.gpu(0)
        (lease,) = node.leases(history=True)
        pipe = node.mps.paths(gpu0.uuid).pipe_dir
        assert node.mps.control(gpu0.uuid).state().status is DaemonStatus.STOPPED  # idle
    assert env["CUDA_VISIBLE_DEVICES"] == env["NVIDIA_VISIBLE_DEVICES"] == gpu0.uuid
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={gpu0.memory_total_mib // 4}M"
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == str(pipe)
    assert env["MIGCTL_LEASE_ID"] == str(lease.lease_id) and not lease.active
    assert "isolation soft" not in done.stdout  # the command's output is its own
    assert "without its share" in done.stderr  # it never attached (it does not use CUDA)


def test_run_with_a_share_attaches_a_cuda_client(machine: str) -> None:
    done = run_migctl("run", "--share", "50", "--", *CLIENT, "--hold-s", "1")
    assert done.returncode == 0, done.stderr
    attached = json.loads(done.stdout.splitlines()[0])
    assert attached["event"] == "attached" and attached["percent"] == 50.0
    assert "without its share" not in done.stderr


def test_run_with_a_share_of_a_mig_device(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_SIM", "h100-single")
    monkeypatch.setenv("MIGCTL_SIM_MPS_LIFETIME_S", "200")
    try:
        assert run_migctl("mode", "enable", "-i", "0").returncode == 0
        assert run_migctl("split", "2", "-i", "0").returncode == 0
        with open_node(sim="h100-single", sim_dir=sim_dir) as node:
            device = node.backend.mig_devices(0)[1]
        done = run_migctl(
            "run", "--share", "25%", "--parent", device.uuid, "--", *CLIENT, "--hold-s", "1"
        )
        assert done.returncode == 0, done.stderr
        attached = json.loads(done.stdout.splitlines()[0])
        assert attached["limit_mib"] == device.memory_total_mib // 4
    finally:
        with open_node(sim="h100-single", sim_dir=sim_dir) as node:
            end_daemons(node)


@pytest.mark.parametrize("share", ["0", "101%", "12.5%", "a quarter"])
def test_bad_shares_are_usage_errors(
    machine: str, capsys: pytest.CaptureFixture[str], share: str
) -> None:
    for verb in (("run",), ("env",), ("lease", "acquire")):
        tail = ("--", "true") if verb == ("run",) else ()
        result = migctl_in_process(capsys, *verb, "--share", share, *tail)
        assert result.code == 2, result.err
        assert "share" in result.err and "Traceback" not in result.err


def test_options_that_do_not_go_with_a_share(
    machine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = migctl_in_process(capsys, "lease", "acquire", "--share", "25", "--profile", "1g.10gb")
    assert mixed.code == 2 and "--profile" in mixed.err
    alone = migctl_in_process(capsys, "lease", "acquire", "--parent", "0")
    assert alone.code == 2 and "go with --share" in alone.err


def test_overcommit_needs_oversubscribe(machine: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = migctl_in_process(capsys, "lease", "acquire", "--share", "60", "--parent", "0")
    assert first.code == 0, first.err
    refused = migctl_in_process(capsys, "lease", "acquire", "--share", "50", "--parent", "0")
    assert refused.code == 5 and "over 100%" in refused.err and "--oversubscribe" in refused.err
    args = ("lease", "acquire", "--share", "50", "--parent", "0", "--memory", "1GiB")
    allowed = migctl_in_process(capsys, *args, "--oversubscribe", "-o", "json")
    assert allowed.code == 0, allowed.err
    lease = json.loads(allowed.out)["lease"]
    assert lease["kind"] == "soft" and lease["memory_limit_mib"] == 1024
    assert any("oversubscribed" in note for note in lease["notes"])
    listed = migctl_in_process(capsys, "lease", "list", "-o", "json")
    assert [x["profile"] for x in json.loads(listed.out)["leases"]] == ["soft 60%", "soft 50%"]
    big = migctl_in_process(capsys, "lease", "acquire", "--share", "10", "--memory", "900GiB")
    assert big.code == 5 and "does not fit" in big.err


def test_env_with_a_share_exports_the_mps_variables(
    machine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = migctl_in_process(capsys, "env", "--share", "25%", "--pid", str(os.getpid()))
    assert result.code == 0, result.err
    assert "export CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25" in result.out
    assert "export CUDA_MPS_PIPE_DIRECTORY=" in result.out
    assert "export CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=" in result.out


def test_a_fault_in_one_client_ends_every_run_of_its_server(machine: str) -> None:
    def start(*args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "migctl", "run", "--share", "30", "--parent", "1"]
        return subprocess.Popen(
            [*argv, "--", *CLIENT, *args],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    victims = [start("--hold-s", "60") for _ in range(2)]
    culprit = start("--hold-s", "60", "--fault-after-s", "2")
    try:
        codes = [p.wait(timeout=90) for p in (*victims, culprit)]
        assert codes == [4, 4, 9]
        listed = run_migctl("lease", "list", "-o", "json")
        assert json.loads(listed.stdout)["leases"] == []  # every lease ended with its run
    finally:
        for process in (*victims, culprit):
            process.kill()
            process.communicate()


def test_list_and_status_show_soft_devices_with_their_isolation(
    machine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    granted = migctl_in_process(capsys, "lease", "acquire", "--share", "25", "--parent", "0")
    assert granted.code == 0, granted.err
    assert "isolation soft" in granted.out  # the grant says it too
    for verb in ("list", "status"):
        shown = migctl_in_process(capsys, verb)
        assert shown.code == 0, shown.err
        assert "Soft devices" in shown.out and "25%" in shown.out
        assert "isolation soft:" in shown.out
        document = json.loads(migctl_in_process(capsys, "-o", "json", verb).out)
        (soft,) = document["soft_devices"]
        assert soft["share_percent"] == 25 and soft["lease"]["kind"] == "soft"
    with_none = migctl_in_process(capsys, "list", "-i", "1")
    assert "Soft devices" not in with_none.out  # GPU 1 shares nothing


def test_mig_mode_on_takes_a_leased_whole_gpu_share_only_with_force(
    sim_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIGCTL_SIM", "h100-single")
    monkeypatch.setenv("MIGCTL_SIM_MPS_LIFETIME_S", "200")
    monkeypatch.delenv("MIGCTL_LEASE_DB", raising=False)
    try:
        share = migctl_in_process(capsys, "lease", "acquire", "--share", "50", "--parent", "0")
        assert share.code == 0, share.err
        refused = migctl_in_process(capsys, "mode", "enable", "-i", "0")
        assert refused.code == 6 and "soft devices" in refused.err, refused.err
        assert "--force" in refused.err
        with open_node(sim="h100-single", sim_dir=sim_dir) as node:
            mig = node.backend.gpu(0).mig
            assert mig is not None and not mig.current and not mig.pending  # nothing changed
            assert [lease.active for lease in node.leases()] == [True]
        forced = migctl_in_process(capsys, "mode", "enable", "-i", "0", "--force")
        assert forced.code == 0, forced.err
        leases = json.loads(migctl_in_process(capsys, "-o", "json", "lease", "list", "-a").out)
        assert [x["end_reason"] for x in leases["leases"]] == ["revoked"]
    finally:
        with open_node(sim="h100-single", sim_dir=sim_dir) as node:
            end_daemons(node)
