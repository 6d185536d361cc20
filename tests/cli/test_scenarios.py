"""One scenario suite, run through the library and through the CLI, on the simulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from migctl.backends.select import open_sim_control
from migctl.catalog import load_catalog
from migctl.geometry import Occupant, placement_refusal
from migctl.model import Placement
from tests.cli.drivers import CliDriver, Driver, LibraryDriver, attach_holder

MACHINE = "dgx-h100"


@pytest.fixture(params=["library", "cli"])
def driver(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Driver:
    if request.param == "library":
        return LibraryDriver(MACHINE)
    return CliDriver(MACHINE, capsys)


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def _assert_legal(instances: list[tuple[str, int, int]]) -> None:
    """No overlaps, every placement legal for its profile (checked with the shared rules)."""
    model = load_catalog().get("h100")
    placed: list[Occupant] = []
    for name, start, size in instances:
        profile = model.gi_profile(name)
        assert profile is not None
        occupant = Occupant(profile, Placement(start, size))
        assert placement_refusal(model, profile, occupant.placement, placed) is None
        placed.append(occupant)


def test_order_that_fails_with_nvidia_smi_is_placed_whole(driver: Driver) -> None:
    assert driver.enable(0).ok
    outcome = driver.create(0, "19,19,14,9")
    assert outcome.ok, outcome
    instances = driver.instances(0)
    assert sorted(n for n, _, _ in instances) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    _assert_legal(instances)
    devices = driver.devices(0)
    assert len(devices) == 4
    assert all(d["uuid"].startswith("MIG-") for d in devices)
    assert len({d["uuid"] for d in devices}) == 4


def test_busy_instance_is_never_destroyed(driver: Driver, holder: subprocess.Popen[bytes]) -> None:
    assert driver.enable(0).ok
    assert driver.create(0, "3g.40gb,3g.40gb").ok
    before = driver.instances(0)
    busy = driver.devices(0)[0]
    attach_holder(MACHINE, 0, busy["uuid"], holder.pid)
    refused = driver.destroy(0, [busy["gi_id"]])
    assert (refused.ok, refused.kind) == (False, "in_use")
    refused_all = driver.destroy(0, None)
    assert (refused_all.ok, refused_all.kind) == (False, "in_use")
    assert driver.instances(0) == before
    holder.kill()
    holder.wait()
    assert driver.destroy(0, [busy["gi_id"]]).ok
    assert len(driver.instances(0)) == 1


def test_infeasible_request_creates_nothing(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert driver.create(0, "1g.10gb").ok
    before = driver.instances(0)
    outcome = driver.create(0, "3g.40gb,3g.40gb")
    assert (outcome.ok, outcome.kind) == (False, "insufficient_resources")
    assert driver.instances(0) == before


def test_failure_midway_rolls_back(driver: Driver) -> None:
    assert driver.enable(0).ok
    control = open_sim_control(MACHINE)
    control.inject_fault("nvmlDeviceCreateGpuInstance", "UNKNOWN", skip=1)
    outcome = driver.create(0, "2g.20gb,2g.20gb,1g.10gb")
    assert (outcome.ok, outcome.kind) == (False, "driver")
    assert driver.instances(0) == []


def test_mode_cannot_be_disabled_while_instances_exist(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert driver.create(0, "7g.80gb").ok
    refused = driver.disable(0)
    assert (refused.ok, refused.kind) == (False, "in_use")
    assert driver.destroy(0, None).ok
    assert driver.disable(0).ok


def test_create_with_mig_off_is_invalid_state(driver: Driver) -> None:
    outcome = driver.create(0, "1g.10gb")
    assert (outcome.ok, outcome.kind) == (False, "invalid_state")


def test_unknown_profile_is_not_found(driver: Driver) -> None:
    assert driver.enable(0).ok
    outcome = driver.create(0, "5g.50gb")
    assert (outcome.ok, outcome.kind) == (False, "not_found")


def test_pending_mode_while_a_process_holds_the_gpu(
    driver: Driver, holder: subprocess.Popen[bytes]
) -> None:
    open_sim_control(MACHINE).attach(holder.pid, 0, None, memory_mib=100)
    outcome = driver.enable(0)
    if driver.name == "cli":
        assert (outcome.ok, outcome.kind) == (False, "invalid_state")
    else:
        change = outcome.data[0]
        assert not change.done and change.pending and str(holder.pid) in (change.reason or "")
    holder.kill()
    holder.wait()
    assert driver.enable(0).ok


@pytest.mark.parametrize("kind", ["library", "cli"])
def test_read_only_refuses_before_any_change(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    writer: Driver = LibraryDriver(MACHINE) if kind == "library" else CliDriver(MACHINE, capsys)
    reader: Driver = (
        LibraryDriver(MACHINE, read_only=True)
        if kind == "library"
        else CliDriver(MACHINE, capsys, read_only=True)
    )
    assert reader.enable(0).kind == "read_only"
    assert writer.enable(0).ok
    assert reader.create(0, "1g.10gb").kind == "read_only"
    assert writer.instances(0) == []


@pytest.mark.parametrize("kind", ["library", "cli"])
def test_gpu_without_mig(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    mixed: Driver = (
        LibraryDriver("mixed-node") if kind == "library" else CliDriver("mixed-node", capsys)
    )
    outcome = mixed.enable(5)  # the L40S
    assert (outcome.ok, outcome.kind) == (False, "not_supported")
