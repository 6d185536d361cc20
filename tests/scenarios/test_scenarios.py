"""One scenario suite, run three ways: the library, the CLI, the CLI through a real daemon.

Each scenario asserts the same outcomes (results, error kinds; the CLI drivers also check each
kind's exit code) whichever way it runs (``conftest.drivers``). The machines are simulated;
processes that hold devices and NVML failures come from the simulator's control panel of the
machine the driver changes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from migctl.catalog import load_catalog
from migctl.geometry import Occupant, placement_refusal
from migctl.model import Placement
from tests.scenarios.conftest import MakeDriver
from tests.scenarios.drivers import Driver, Instance


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def _assert_legal(instances: list[Instance]) -> None:
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
    driver.control().attach(holder.pid, 0, busy["uuid"], memory_mib=512)
    refused = driver.destroy(0, [busy["gi_id"]])
    assert (refused.ok, refused.kind) == (False, "in_use")
    refused_all = driver.destroy(0, None)
    assert (refused_all.ok, refused_all.kind) == (False, "in_use")
    assert driver.instances(0) == before
    holder.kill()
    holder.wait()
    assert driver.destroy(0, [busy["gi_id"]]).ok
    assert len(driver.instances(0)) == 1


def test_a_leased_device_is_busy_until_released(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert driver.create(0, "7g.80gb").ok
    [device] = driver.devices(0)
    leased = driver.lease("7g.80gb")
    assert leased.ok, leased
    refused = driver.destroy(0, [device["gi_id"]])
    assert (refused.ok, refused.kind) == (False, "in_use")
    none_left = driver.lease("7g.80gb")
    assert (none_left.ok, none_left.kind) == (False, "insufficient_resources")
    assert driver.release(leased.data).ok
    again = driver.release(leased.data)
    assert (again.ok, again.kind) == (False, "invalid_state")  # already ended
    assert driver.destroy(0, [device["gi_id"]]).ok


def test_infeasible_request_creates_nothing(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert driver.create(0, "1g.10gb").ok
    before = driver.instances(0)
    outcome = driver.create(0, "3g.40gb,3g.40gb")
    assert (outcome.ok, outcome.kind) == (False, "insufficient_resources")
    assert driver.instances(0) == before


def test_failure_midway_rolls_back(driver: Driver) -> None:
    assert driver.enable(0).ok
    driver.control().inject_fault("nvmlDeviceCreateGpuInstance", "UNKNOWN", skip=1)
    outcome = driver.create(0, "2g.20gb,2g.20gb,1g.10gb")
    assert (outcome.ok, outcome.kind) == (False, "driver")
    assert driver.instances(0) == []


def test_split_applies_once_then_is_a_noop(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert not driver.already_split(0, 7)
    assert driver.split(0, 7).ok
    assert sorted(n for n, _, _ in driver.instances(0)) == ["1g.10gb"] * 7
    assert driver.already_split(0, 7)
    refused = driver.split(0, 9)  # an H100 holds at most 7
    assert (refused.ok, refused.kind) == (False, "insufficient_resources")
    assert len(driver.instances(0)) == 7


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
    driver.control().attach(holder.pid, 0, None, memory_mib=100)
    outcome = driver.enable(0)
    if driver.name == "library":  # a value: the change and why it waits
        change = outcome.data[0]
        assert not change.done and change.pending and str(holder.pid) in (change.reason or "")
    else:  # the command line: an error naming the reason (exit 10)
        assert (outcome.ok, outcome.kind) == (False, "invalid_state")
    holder.kill()
    holder.wait()
    assert driver.enable(0).ok


def test_read_only_refuses_before_any_change(drivers: MakeDriver) -> None:
    writer, reader = drivers("dgx-h100"), drivers("dgx-h100", read_only=True)
    assert reader.enable(0).kind == "read_only"
    assert writer.enable(0).ok
    assert reader.create(0, "1g.10gb").kind == "read_only"
    assert reader.split(0, 7).kind == "read_only"
    assert writer.instances(0) == []


def test_gpu_without_mig(drivers: MakeDriver) -> None:
    mixed = drivers("mixed-node")
    outcome = mixed.enable(5)  # the L40S
    assert (outcome.ok, outcome.kind) == (False, "not_supported")


def test_a_lease_of_a_profile_no_gpu_has_is_invalid_input(driver: Driver) -> None:
    assert driver.enable(0).ok
    assert driver.split(0, 7).ok
    unknown = driver.lease("5g.50gb")  # no H100 profile: it can never be free
    assert (unknown.ok, unknown.kind) == (False, "invalid_input")
    taken = driver.lease("7g.80gb")  # a real profile with no device now: resources
    assert (taken.ok, taken.kind) == (False, "insufficient_resources")
