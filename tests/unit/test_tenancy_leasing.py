"""Leasing against a simulated machine: selection, candidates, busy devices, --create."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend, open_sim_control
from migctl.errors import InsufficientResourcesError, UsageError
from migctl.leases import DeviceRequest, EndReason, LeaseOwner, LeaseStore
from migctl.tenancy.creation import choose_new_instance, satisfies
from migctl.tenancy.leasing import AcquireOptions, acquire, release_quietly
from migctl.tenancy.selection import DeviceSelection, candidates
from migctl.workflow import create_gpu_instances, parse_profile_requests, set_mode

ME = LeaseOwner.current()


def _layout(backend: NvmlBackend, gpu: int, profiles: str) -> None:
    set_mode(backend, [gpu], True)
    requests = parse_profile_requests(backend.live_model(gpu), profiles, gpu)
    create_gpu_instances(backend, gpu, requests, with_ci=True)


@pytest.fixture
def machine() -> Iterator[NvmlBackend]:
    """dgx-h100: GPU 0 with 2g.20gb at 0, 1g.10gb at 2, 3g.40gb at 4 (slice 3 free), GPU 1
    with MIG on and empty, GPUs 2-7 with MIG off."""
    backend = open_backend("dgx-h100")
    _layout(backend, 0, "2g.20gb:0,1g.10gb:2,3g.40gb:4")
    set_mode(backend, [1], True)
    yield backend
    backend.close()


@pytest.fixture
def store(tmp_path: Path) -> LeaseStore:
    return LeaseStore(tmp_path / "leases.db")


def test_selection_builds_the_store_request() -> None:
    request = DeviceSelection(profile="MIG 1G.10GB", min_memory_mib=100).request()
    assert request == DeviceRequest(profile="1g.10gb", min_memory_mib=100)
    assert DeviceSelection(device_uuid="MIG-x").request() == DeviceRequest(uuid="MIG-x")
    with pytest.raises(UsageError, match="not both"):
        DeviceSelection(profile="1g.10gb", device_uuid="MIG-x").request()
    with pytest.raises(UsageError, match="not a MIG device"):
        DeviceSelection(device_uuid="GPU-1234").request()


def test_candidates_are_the_mig_devices_with_their_sms(machine: NvmlBackend) -> None:
    found = candidates(machine)
    devices = machine.mig_devices(0)
    assert [c.uuid for c in found] == [d.uuid for d in devices]
    model = machine.live_model(0)
    for candidate in found:
        profile = model.gi_profile(candidate.profile)
        assert profile is not None and candidate.sm_count == profile.sm_count
        assert candidate.gpu_index == 0 and not candidate.busy


def test_a_device_with_a_process_is_busy_and_never_leased(
    machine: NvmlBackend, store: LeaseStore
) -> None:
    small = next(d for d in machine.mig_devices(0) if d.ci_profile == "1g.10gb")
    holder = subprocess.Popen(["sleep", "30"])
    try:
        open_sim_control("dgx-h100").attach(holder.pid, 0, small.uuid, 100)
        busy = {c.uuid: c.busy for c in candidates(machine)}
        assert busy[small.uuid] is True
        lease = acquire(machine, store, DeviceSelection(), ME, AcquireOptions())
        assert lease.uuid != small.uuid  # the smallest device is busy: the next one is chosen
    finally:
        holder.kill()
        holder.wait()
    assert {c.uuid: c.busy for c in candidates(machine)}[small.uuid] is False


def test_acquire_by_need_picks_the_smallest_that_fits(
    machine: NvmlBackend, store: LeaseStore
) -> None:
    by_memory = acquire(
        machine, store, DeviceSelection(min_memory_mib=12 * 1024), ME, AcquireOptions()
    )
    assert by_memory.profile == "2g.20gb"
    by_sms = acquire(machine, store, DeviceSelection(min_sm_count=40), ME, AcquireOptions())
    assert by_sms.profile == "3g.40gb"
    with pytest.raises(InsufficientResourcesError):
        acquire(machine, store, DeviceSelection(min_sm_count=40), ME, AcquireOptions())


def test_release_quietly_ends_once_and_then_is_silent(
    machine: NvmlBackend, store: LeaseStore
) -> None:
    lease = acquire(machine, store, DeviceSelection(profile="1g.10gb"), ME, AcquireOptions())
    ended = release_quietly(store, lease)
    assert ended is not None and ended.end_reason is EndReason.RELEASED
    assert release_quietly(store, lease) is None  # already ended: no error


def test_choose_new_instance_smallest_profile_on_lowest_gpu_with_room(
    machine: NvmlBackend,
) -> None:
    # GPU 0's free slice 3 takes a 1g.10gb.
    small = choose_new_instance(machine, DeviceRequest(min_memory_mib=5000))
    assert small is not None and (small.gpu_index, small.profile.name) == (0, "1g.10gb")
    # 12 GiB needs a 20 GB profile; 1g.20gb has fewer SMs than 2g.20gb. No room on GPU 0.
    middle = choose_new_instance(machine, DeviceRequest(min_memory_mib=12 * 1024))
    assert middle is not None and (middle.gpu_index, middle.profile.name) == (1, "1g.20gb")
    more_sms = choose_new_instance(
        machine, DeviceRequest(min_memory_mib=12 * 1024, min_sm_count=30)
    )
    assert more_sms is not None and more_sms.profile.name == "2g.20gb"
    # GPUs 2-7 have MIG off: never chosen, even for the biggest profile.
    whole = choose_new_instance(machine, DeviceRequest(profile="7g.80gb"))
    assert whole is not None and whole.gpu_index == 1
    assert choose_new_instance(machine, DeviceRequest(uuid="MIG-x")) is None
    assert choose_new_instance(machine, DeviceRequest(profile="1c.3g.40gb")) is None


def test_satisfies_prefers_nothing_it_cannot_prove(machine: NvmlBackend) -> None:
    model = machine.live_model(0)
    one_g = model.gi_profile("1g.10gb")
    assert one_g is not None
    assert satisfies(one_g, DeviceRequest(min_sm_count=one_g.sm_count))
    assert not satisfies(one_g, DeviceRequest(min_sm_count=(one_g.sm_count or 0) + 1))
    assert not satisfies(one_g, DeviceRequest(profile="1g.10gb+me"))


def test_create_makes_a_device_when_none_is_free(machine: NvmlBackend, store: LeaseStore) -> None:
    options = AcquireOptions(create=True)
    first = acquire(machine, store, DeviceSelection(profile="2g.20gb"), ME, options)
    assert first.gpu_index == 0  # the existing 2g.20gb is free: nothing is created
    before = {d.uuid for d in machine.mig_devices(1)}
    second = acquire(machine, store, DeviceSelection(profile="2g.20gb"), ME, options)
    after = machine.mig_devices(1)
    assert second.gpu_index == 1 and second.uuid not in before
    assert [d.ci_profile for d in after if d.uuid == second.uuid] == ["2g.20gb"]
    with pytest.raises(InsufficientResourcesError):  # without --create nothing is made
        acquire(machine, store, DeviceSelection(profile="4g.40gb"), ME, AcquireOptions())
    assert len(machine.mig_devices(1)) == 1
