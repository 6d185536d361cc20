"""``migctl docker-args --lease N`` for a soft device: the parent plus the MPS client setup.

A container cannot be started here, so the flags are checked two ways: exactly (every form,
text and JSON), and by what they do: a simulated CUDA program started with the environment
the flags give a container (the ``-e`` variables, and the device ``--gpus`` makes visible)
attaches to the parent's MPS daemon with the lease's share and memory limit.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migctl.node.open import open_node
from tests.cli.conftest import migctl
from tests.cli.test_soft_cli import child_env
from tests.unit.soft_nodes import end_daemons

Capsys = pytest.CaptureFixture[str]
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


def soft_lease(capsys: Capsys, *extra: str) -> dict[str, Any]:
    args = ("lease", "acquire", "--share", "25", "--parent", "1", "--pid", str(os.getpid()))
    granted = migctl(capsys, "-o", "json", *args, *extra)
    assert granted.code == 0, granted.err
    lease: dict[str, Any] = granted.json()["lease"]
    return lease


def container_env(flags: list[str]) -> dict[str, str]:
    """What a container started with ``flags`` would see: its ``-e`` variables, and the one
    device ``--gpus device=...`` makes visible (as the NVIDIA runtime does)."""
    env: dict[str, str] = {}
    for flag, value in itertools.pairwise(flags):
        if flag == "-e":
            name, _, text = value.partition("=")
            env[name] = text
        elif flag == "--gpus":
            env["CUDA_VISIBLE_DEVICES"] = value.removeprefix("device=")
    return env


def test_docker_args_of_a_soft_lease_give_the_parent_and_the_mps_setup(
    machine: str, capsys: Capsys, sim_dir: Path
) -> None:
    lease = soft_lease(capsys)
    with open_node(sim=machine, sim_dir=sim_dir) as node:
        gpu = node.backend.gpu(1)
        pipe = str(node.mps.paths(gpu.uuid).pipe_dir)
    mps = [
        "--ipc=host",
        "-v",
        f"{pipe}:{pipe}",
        "-e",
        f"CUDA_MPS_PIPE_DIRECTORY={pipe}",
        "-e",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
        "-e",
        f"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0={gpu.memory_total_mib // 4}M",
        "--user",
        str(os.geteuid()),
    ]
    shown = migctl(capsys, "-o", "json", "docker-args", "--lease", str(lease["lease_id"]))
    assert shown.code == 0, shown.err
    document = shown.json()
    assert document["kind"] == "DockerArgs" and document["device_kind"] == "soft"
    assert document["argv"] == {
        "gpus": ["--gpus", f"device={gpu.uuid}", *mps],
        "env": ["--runtime=nvidia", "-e", f"NVIDIA_VISIBLE_DEVICES={gpu.uuid}", *mps],
        "cdi": ["--device", f"nvidia.com/gpu={gpu.uuid}", *mps],
    }
    assert document["uuid"] == gpu.uuid and document["soft_device"] == lease["uuid"]
    assert document["lease_id"] == lease["lease_id"]
    assert document["mps_environment"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert any("--ipc=host" in note for note in document["notes"])
    for form in ("gpus", "env", "cdi"):  # one line, for an unquoted $(migctl docker-args ...)
        text = migctl(capsys, "docker-args", "--lease", str(lease["lease_id"]), "--form", form)
        assert text.code == 0, text.err
        assert text.out.count("\n") == 1
        assert text.out.split() == shlex.split(text.out) == document["argv"][form]


def test_a_program_started_with_the_flags_joins_the_soft_device(
    machine: str, capsys: Capsys
) -> None:
    lease = soft_lease(capsys, "--memory", "2GiB")
    shown = migctl(capsys, "-o", "json", "docker-args", "--lease", str(lease["lease_id"]))
    flags = shown.json()["argv"]["gpus"]
    env = {**child_env(), **container_env(flags)}
    client = [sys.executable, "-m", "migctl.sim.mps_client", "--hold-s", "0.5"]
    done = subprocess.run(client, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    attached = json.loads(done.stdout.splitlines()[0])
    assert attached["event"] == "attached", attached
    assert attached["percent"] == 25.0 and attached["limit_mib"] == 2048


def test_explain_labels_every_form_and_says_why_the_mps_flags(machine: str, capsys: Capsys) -> None:
    lease = soft_lease(capsys)
    shown = migctl(capsys, "docker-args", "--lease", str(lease["lease_id"]), "--explain")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["gpus", "env", "cdi"]
    assert all("--ipc=host" in line for line in lines[:3])
    assert "MPS serves one Unix user" in shown.out.replace("\n", " ")


def test_a_soft_device_is_named_through_its_lease(machine: str, capsys: Capsys) -> None:
    lease = soft_lease(capsys)
    refused = migctl(capsys, "docker-args", "--device", lease["uuid"])
    assert refused.code == 2 and "--lease" in refused.err
    assert "Traceback" not in refused.err
    assert migctl(capsys, "lease", "release", str(lease["lease_id"])).code == 0
    ended = migctl(capsys, "docker-args", "--lease", str(lease["lease_id"]))
    assert ended.code == 10 and "ended" in ended.err
