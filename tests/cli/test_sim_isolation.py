"""Simulated machines never share state or identities.

Each simulated machine keeps its apply journal, lease database and CDI spec in its own
directory beside its state file, never in the host's state directory: `recover` on one machine
never finishes another's interrupted apply, and a lease on one never blocks a device of another.
Identities (GPU and MIG UUIDs, serials, PCI bus ids) derive from the machine's name or seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pynvml as nv
import pytest

from migctl.backends.select import open_backend, open_sim_control
from migctl.cli.main import run
from migctl.leases import DeviceCandidate, DeviceRequest, LeaseOwner, LeaseStore
from migctl.node.open import open_node
from tests.cli.conftest import run_cli, run_cli_json

MACHINE = "h100-single"


@pytest.fixture(autouse=True)
def shared_host_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's own state (journal dir, default lease database) in one place, as on a host
    where several people (or one person) try simulated machines; nothing names a lease DB."""
    host = tmp_path / "host-state"
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(host))
    monkeypatch.setenv("XDG_STATE_HOME", str(host))
    monkeypatch.delenv("MIGCTL_LEASE_DB", raising=False)
    monkeypatch.delenv("MIGCTL_CDI_PATH", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 4321)  # the host default is then under host/
    return host


def on(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_SIM_DIR", str(sim_dir))


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    return run_cli_json(capsys, "--sim", MACHINE, *args)


def kill_an_apply(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "--sim", MACHINE, "split", "2")[0] == 0
    control = open_sim_control(MACHINE)
    control.inject_fault("nvml@mutation", "KILL", skip=3)
    child = subprocess.run(
        [sys.executable, "-m", "migctl", "--sim", MACHINE, "split", "7"],
        env=os.environ.copy(),
        check=False,
        capture_output=True,
    )
    control.clear_faults()
    assert child.returncode == -9, child.stderr


def layout(capsys: pytest.CaptureFixture[str]) -> list[str]:
    gpu = cli_json(capsys, "list")["gpus"][0]
    return sorted(d["uuid"] for d in gpu["mig_devices"])


def test_recover_never_finishes_another_machines_apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(tmp_path / "alice-sim", monkeypatch)
    kill_an_apply(capsys)
    on(tmp_path / "bob-sim", monkeypatch)  # a fresh machine of the same name, elsewhere
    assert run_cli(capsys, "--sim", MACHINE, "mode", "enable")[0] == 0
    before = layout(capsys)
    assert cli_json(capsys, "recover")["mode"] == "nothing"
    assert layout(capsys) == before == []
    on(tmp_path / "alice-sim", monkeypatch)
    found = cli_json(capsys, "recover")
    assert found["mode"] == "complete" and found["found"]["machine"] == f"sim-{MACHINE}"
    assert len(layout(capsys)) == 7
    assert (tmp_path / "alice-sim" / MACHINE).is_dir()  # the journal lived beside the state


def test_a_lease_on_one_machine_never_blocks_another(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sim in ("alice-sim", "bob-sim"):
        on(tmp_path / sim, monkeypatch)
        assert run_cli(capsys, "--sim", MACHINE, "split", "2")[0] == 0
    on(tmp_path / "alice-sim", monkeypatch)
    leased = cli_json(capsys, "lease", "acquire", "--job", "alice")["lease"]
    assert (tmp_path / "alice-sim" / MACHINE / "leases.db").exists()
    on(tmp_path / "bob-sim", monkeypatch)
    assert cli_json(capsys, "lease", "list")["leases"] == []
    same = cli_json(capsys, "lease", "acquire", "--device", leased["uuid"])["lease"]
    assert same["uuid"] == leased["uuid"]  # same name: same identities, but its own leases
    assert not (tmp_path / "host-state" / "migctl" / "leases.db").exists()


def test_reset_state_forgets_the_machines_journal_and_leases(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(tmp_path / "sim", monkeypatch)
    kill_an_apply(capsys)
    files = tmp_path / "sim" / MACHINE
    device = DeviceCandidate("MIG-gone", 0, 1, 0, "1g.10gb", 9_984)
    with LeaseStore(files / "leases.db") as store:
        store.acquire(DeviceRequest(), LeaseOwner("alice", 1001, "node1"), [device])
    assert run_cli(capsys, "--sim", MACHINE, "sim", "reset-state")[0] == 0
    assert not files.exists()
    assert cli_json(capsys, "recover")["mode"] == "nothing"
    assert cli_json(capsys, "lease", "list", "--all")["leases"] == []


def test_a_simulated_machines_cdi_spec_lives_in_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(tmp_path / "sim", monkeypatch)
    with open_node(MACHINE) as node:
        assert node.settings.cdi_path == tmp_path / "sim" / MACHINE / "cdi.yaml"
    monkeypatch.setenv("MIGCTL_CDI_PATH", str(tmp_path / "explicit.yaml"))
    with open_node(MACHINE) as node:
        assert node.settings.cdi_path == tmp_path / "explicit.yaml"


def identities(machine: str) -> dict[str, list[str]]:
    """GPU UUIDs, serials, bus ids and the MIG UUIDs of a 7 x 1g.10gb split on every GPU."""
    assert run(["--sim", machine, "split", "7", "-i", "all"]) == 0
    backend = open_backend(machine)
    try:
        gpus = backend.gpus()
        serials = [nv.nvmlDeviceGetSerial(nv.nvmlDeviceGetHandleByIndex(g.index)) for g in gpus]
        return {
            "gpu": [g.uuid for g in gpus],
            "serial": serials,
            "bus": [g.pci_bus_id for g in gpus],
            "mig": [d.uuid for g in gpus for d in backend.mig_devices(g.index)],
        }
    finally:
        backend.close()


def machine_file(directory: Path, name: str, seed: str | None = None) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    lines = [f"name: {name}", *([f"seed: {seed}"] if seed else []), "gpus:"]
    path.write_text("\n".join([*lines, "  - model: h100", "    count: 2", ""]))
    return str(path)


def test_differently_named_machines_never_share_identities(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(tmp_path / "sim", monkeypatch)
    first = identities(machine_file(tmp_path / "a", "node-a"))
    second = identities(machine_file(tmp_path / "b", "node-b"))
    for kind in ("gpu", "serial", "bus", "mig"):
        assert len(set(first[kind])) == len(first[kind]), kind  # unique within a machine
        assert not set(first[kind]) & set(second[kind]), kind
    capsys.readouterr()


def test_identities_are_deterministic_and_follow_the_seed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(tmp_path / "sim-1", monkeypatch)
    once = identities(machine_file(tmp_path / "a", "node-a"))
    on(tmp_path / "sim-2", monkeypatch)
    assert identities(machine_file(tmp_path / "a", "node-a")) == once
    seeded = identities(machine_file(tmp_path / "c", "renamed", seed="node-a"))
    assert seeded == once  # the seed, not the name, makes the identities
    capsys.readouterr()
