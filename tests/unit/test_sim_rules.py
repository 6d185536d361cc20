"""The simulator is strict like the hardware, seen through NvmlBackend and SimControl.

Why this exists: migctl's safety depends on the simulator refusing what a real GPU
refuses (overlaps, exhausted profiles, bad placements, MIG off, busy instances, missing
permissions) with errors that say what and where, and on the machine behaving like one
machine (processes, resets, reboots, faults, state shared by consecutive processes).
Driver auto-placement is in ``test_sim_auto_placement.py``. Test-only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import migctl
from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend, open_sim_control
from migctl.catalog import Catalog
from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    InvalidStateError,
    MigctlError,
    NotSupportedError,
    PermissionDeniedError,
    ReadOnlyError,
)
from migctl.model import GpuInstance, MigDevice, MigMode, Placement
from migctl.sim import SimControl

Sleeper = Callable[[], "subprocess.Popen[bytes]"]
P3G, P4G, P2G, P1G, P1G_ME, P1G_REV2 = 9, 5, 14, 19, 20, 15  # H100 GI profile ids
CI_1C, CI_3G = 0, 2  # CI profile ids inside an H100 3g.40gb


@pytest.fixture
def h100(dgx_h100: NvmlBackend) -> NvmlBackend:
    """A DGX H100 with MIG enabled on GPU 0."""
    assert dgx_h100.set_mig_mode(0, True).done
    return dgx_h100


@pytest.fixture
def control(h100: NvmlBackend, dgx_h100_control: SimControl) -> SimControl:
    return dgx_h100_control


@pytest.fixture
def start_sleeper() -> Iterator[Sleeper]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["sleep", "30"])
        started.append(process)
        return process

    yield start
    for process in started:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def placements(backend: NvmlBackend, gpu: int = 0) -> list[tuple[str, str]]:
    return [(g.profile_name, str(g.placement)) for g in backend.gpu_instances(gpu)]


def mig_device(backend: NvmlBackend, gi: GpuInstance) -> MigDevice:
    return next(d for d in backend.mig_devices(gi.gpu_index) if d.gi_id == gi.id)


def gi_with_ci(backend: NvmlBackend) -> tuple[GpuInstance, MigDevice]:
    gi = backend.create_gpu_instance(0, P3G, Placement(0, 4))
    backend.create_compute_instance(0, gi.id, CI_3G, Placement(0, 3))
    return gi, mig_device(backend, gi)


# --- placement rules -------------------------------------------------------------------


def test_overlap_names_the_occupied_slices_and_what_fits(h100: NvmlBackend) -> None:
    h100.create_gpu_instance(0, P1G, Placement(1, 1))
    h100.create_gpu_instance(0, P2G, Placement(2, 2))
    with pytest.raises(InsufficientResourcesError) as caught:
        h100.create_gpu_instance(0, P4G, Placement(0, 4))
    error = caught.value
    assert "GPU 0" in error.message and "4g.40gb" in error.message
    assert "1g.10gb at 1:1" in error.message and "2g.20gb at 2:2" in error.message
    assert error.hint is not None and error.hint.startswith("fits instead")
    assert "3g.40gb at 4" in error.hint and "2g.20gb at 4" in error.hint
    assert "4g.40gb" not in error.hint and "7g.80gb" not in error.hint
    assert placements(h100) == [("1g.10gb", "1:1"), ("2g.20gb", "2:2")]


def test_exhausted_profile_is_refused(h100: NvmlBackend) -> None:
    h100.create_gpu_instance(0, P3G, Placement(0, 4))
    h100.create_gpu_instance(0, P3G, Placement(4, 4))
    free = {s.profile.name: s.free for s in h100.gi_profiles(0)}
    assert free == dict.fromkeys(free, 0)
    with pytest.raises(InsufficientResourcesError) as caught:
        h100.create_gpu_instance(0, P3G, Placement(4, 4))
    assert "at most 2" in caught.value.message
    assert caught.value.hint is not None and "full" in caught.value.hint
    assert len(h100.gpu_instances(0)) == 2


def test_one_media_extension_per_gpu(h100: NvmlBackend) -> None:
    h100.create_gpu_instance(0, P1G_ME, Placement(0, 1))
    free = {s.profile.name: s.free for s in h100.gi_profiles(0)}
    assert free["1g.10gb+me"] == 0 and free["1g.10gb"] == 6
    with pytest.raises(InsufficientResourcesError) as caught:
        h100.create_gpu_instance(0, P1G_ME, Placement(5, 1))
    assert "1g.10gb+me" in caught.value.message and "at most 1" in caught.value.message
    h100.create_gpu_instance(0, P1G, Placement(5, 1))
    assert placements(h100) == [("1g.10gb+me", "0:1"), ("1g.10gb", "5:1")]


@pytest.mark.parametrize(
    ("profile_id", "placement"),
    [
        (P3G, Placement(2, 4)),
        (P3G, Placement(0, 2)),
        (P1G, Placement(7, 1)),
        (P2G, Placement(6, 2)),
    ],
)
def test_bad_placement_is_refused(h100: NvmlBackend, profile_id: int, placement: Placement) -> None:
    with pytest.raises(InvalidInputError) as caught:
        h100.create_gpu_instance(0, profile_id, placement)
    assert str(placement) in caught.value.message and "legal" in caught.value.message
    assert h100.gpu_instances(0) == []


def test_create_with_mig_off_is_invalid_state(dgx_h100: NvmlBackend) -> None:
    with pytest.raises(InvalidStateError) as caught:
        dgx_h100.create_gpu_instance(1, P3G, Placement(0, 4))
    assert "MIG mode is off on GPU 1" in caught.value.message
    assert caught.value.hint is not None and "enable" in caught.value.hint


def test_disable_with_instances_names_them(h100: NvmlBackend) -> None:
    gi = h100.create_gpu_instance(0, P2G, Placement(4, 2))
    with pytest.raises(InUseError) as caught:
        h100.set_mig_mode(0, False)
    assert f"GPU instances {gi.id} still exist" in caught.value.message
    h100.destroy_gpu_instance(0, gi.id)
    assert not h100.set_mig_mode(0, False).pending


# --- busy instances --------------------------------------------------------------------


def test_destroying_gi_with_cis_names_them(h100: NvmlBackend) -> None:
    gi = h100.create_gpu_instance(0, P3G, Placement(4, 4))
    first = h100.create_compute_instance(0, gi.id, CI_1C, Placement(0, 1))
    second = h100.create_compute_instance(0, gi.id, CI_1C, Placement(2, 1))
    with pytest.raises(InUseError) as caught:
        h100.destroy_gpu_instance(0, gi.id)
    assert f"compute instances {first.id}, {second.id}" in caught.value.message
    assert caught.value.hint is not None and "destroy its compute instances" in caught.value.hint
    assert [g.id for g in h100.gpu_instances(0)] == [gi.id]


def test_live_process_blocks_ci_and_gi_destroy_until_it_exits(
    h100: NvmlBackend, control: SimControl, start_sleeper: Sleeper
) -> None:
    gi, device = gi_with_ci(h100)
    process = start_sleeper()
    control.attach(process.pid, 0, device.uuid, memory_mib=100)
    assert [p.pid for p in mig_device(h100, gi).processes] == [process.pid]
    with pytest.raises(InUseError) as ci_error:
        h100.destroy_compute_instance(0, gi.id, device.ci_id)
    assert str(process.pid) in ci_error.value.message
    with pytest.raises(InUseError) as gi_error:
        h100.destroy_gpu_instance(0, gi.id)
    assert str(process.pid) in gi_error.value.message
    assert gi_error.value.hint is not None and str(process.pid) in gi_error.value.hint
    stop(process)
    h100.destroy_compute_instance(0, gi.id, device.ci_id)
    h100.destroy_gpu_instance(0, gi.id)
    assert h100.gpu_instances(0) == []


def test_enable_with_whole_gpu_process_stays_pending(
    dgx_h100: NvmlBackend, dgx_h100_control: SimControl, start_sleeper: Sleeper
) -> None:
    process = start_sleeper()
    dgx_h100_control.attach(process.pid, 2, None)
    change = dgx_h100.set_mig_mode(2, True)
    assert (change.current, change.pending, change.done) == (False, True, False)
    assert change.reason is not None and str(process.pid) in change.reason
    with pytest.raises(InUseError) as caught:
        dgx_h100_control.reset_gpu(2)
    assert str(process.pid) in caught.value.message
    assert dgx_h100.mig_mode(2) == MigMode(False, True)
    stop(process)
    dgx_h100_control.reset_gpu(2)
    assert dgx_h100.mig_mode(2) == MigMode(True, True)


@pytest.fixture
def a100_vm(catalog: Catalog) -> Iterator[tuple[NvmlBackend, SimControl]]:
    backend = open_backend("a100-vm", catalog=catalog)
    yield backend, open_sim_control("a100-vm", catalog)
    backend.close()


def test_pass_through_vm_stays_pending_until_reboot(
    a100_vm: tuple[NvmlBackend, SimControl],
) -> None:
    backend, control = a100_vm
    change = backend.set_mig_mode(0, True)
    assert not change.done and change.pending
    assert change.reason is not None and "reboot" in change.reason
    assert not backend.set_mig_mode(0, True).done
    with pytest.raises(NotSupportedError) as caught:
        control.reset_gpu(0)
    assert caught.value.hint is not None and "reboot" in caught.value.hint
    assert backend.mig_mode(0) == MigMode(False, True)
    with pytest.raises(InvalidStateError):
        backend.create_gpu_instance(0, P3G, Placement(0, 4))
    control.reboot()
    assert backend.mig_mode(0) == MigMode(True, True)
    backend.create_gpu_instance(0, P3G, Placement(0, 4))


def test_reboot_wipes_instances_and_processes(
    h100: NvmlBackend, control: SimControl, start_sleeper: Sleeper
) -> None:
    gi, device = gi_with_ci(h100)
    h100.set_mig_mode(3, True)
    h100.create_gpu_instance(3, P1G, Placement(6, 1))
    process = start_sleeper()
    control.attach(process.pid, 0, device.uuid)
    control.reboot()
    assert h100.gpu_instances(0) == [] and h100.gpu_instances(3) == []
    assert h100.processes(0) == [] and h100.mig_devices(0) == []
    assert h100.mig_mode(0) == MigMode(True, True)
    assert all(gpu.processes == [] and gpu.gis == [] for gpu in control.state().gpus)
    assert gi.id not in {g.id for g in h100.gpu_instances(0)}


# --- permissions, read-only, faults ----------------------------------------------------


def mutations(backend: NvmlBackend, gi: GpuInstance, ci_id: int) -> list[Callable[[], object]]:
    return [
        lambda: backend.create_gpu_instance(0, P3G, Placement(4, 4)),
        lambda: backend.destroy_gpu_instance(0, gi.id),
        lambda: backend.create_compute_instance(0, gi.id, CI_1C, Placement(0, 1)),
        lambda: backend.destroy_compute_instance(0, gi.id, ci_id),
        lambda: backend.set_mig_mode(1, True),
        lambda: backend.set_mig_mode(0, False),
    ]


def test_permission_denied_on_every_mutation_and_nothing_changes(
    h100: NvmlBackend, control: SimControl
) -> None:
    gi, device = gi_with_ci(h100)
    control.set_permissions("deny")
    assert control.state_path is not None
    before = control.state_path.read_text()
    for number, mutate in enumerate(mutations(h100, gi, device.ci_id)):
        with pytest.raises(PermissionDeniedError) as caught:
            mutate()
        assert "permission" in caught.value.message.lower(), number
        assert caught.value.hint is not None and "root" in caught.value.hint, number
    assert control.state_path.read_text() == before


def test_read_only_refuses_before_any_driver_call(
    h100: NvmlBackend, control: SimControl, catalog: Catalog
) -> None:
    gi, device = gi_with_ci(h100)
    h100.close()
    mutating = (
        "nvmlDeviceCreateGpuInstance",
        "nvmlGpuInstanceDestroy",
        "nvmlGpuInstanceCreateComputeInstance",
        "nvmlComputeInstanceDestroy",
        "nvmlDeviceSetMigMode",
    )
    for function in mutating:
        control.inject_fault(function, "UNKNOWN")
    before = control.state().to_dict()
    read_only = open_backend("dgx-h100", read_only=True, catalog=catalog)
    try:
        assert read_only.read_only
        for mutate in mutations(read_only, gi, device.ci_id):
            with pytest.raises(ReadOnlyError):
                mutate()
    finally:
        read_only.close()
    after = control.state().to_dict()
    assert after == before  # the faults are still armed: no mutating call reached NVML
    assert len(after["faults"]) == len(mutating)


def test_read_only_from_the_environment(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_READ_ONLY", "1")
    backend = open_backend("dgx-h100", catalog=catalog)
    try:
        assert backend.read_only
        with pytest.raises(ReadOnlyError) as caught:
            backend.set_mig_mode(0, True)
        assert caught.value.hint is not None and "MIGCTL_READ_ONLY" in caught.value.hint
        assert backend.mig_mode(0) == MigMode(False, False)
    finally:
        backend.close()
    assert not open_sim_control("dgx-h100", catalog).state().gpus[0].mig_pending


def test_injected_fault_fails_exactly_the_next_create(
    h100: NvmlBackend, control: SimControl
) -> None:
    control.inject_fault("nvmlDeviceCreateGpuInstance", "INSUFFICIENT_RESOURCES")
    with pytest.raises(InsufficientResourcesError):
        h100.create_gpu_instance(0, P3G, Placement(4, 4))
    assert h100.gpu_instances(0) == []
    h100.create_gpu_instance(0, P3G, Placement(4, 4))
    h100.create_gpu_instance(0, P3G, Placement(0, 4))
    assert placements(h100) == [("3g.40gb", "0:4"), ("3g.40gb", "4:4")]
    assert control.state().faults == []


def test_injected_fault_counts_skips_and_gpu_filter(h100: NvmlBackend, control: SimControl) -> None:
    h100.set_mig_mode(1, True)
    control.inject_fault("nvmlDeviceCreateGpuInstance", "UNKNOWN", count=2, gpu=1, skip=1)
    h100.create_gpu_instance(0, P1G, Placement(0, 1))  # other GPU: not matched
    h100.create_gpu_instance(1, P1G, Placement(0, 1))  # skipped once
    for start in (1, 2):
        with pytest.raises(MigctlError):
            h100.create_gpu_instance(1, P1G, Placement(start, 1))
    h100.create_gpu_instance(1, P1G, Placement(1, 1))
    assert placements(h100, 1) == [("1g.10gb", "0:1"), ("1g.10gb", "1:1")]


# --- one machine across backends and processes ---------------------------------------


def test_state_persists_across_backends(catalog: Catalog) -> None:
    first = open_backend("dgx-h100", catalog=catalog)
    first.set_mig_mode(5, True)
    created = first.create_gpu_instance(5, P1G_REV2, Placement(6, 2))
    first.close()
    second = open_backend("dgx-h100", catalog=catalog)
    try:
        assert second.gpu_instances(5) == [created]
        second.destroy_gpu_instance(5, created.id)
    finally:
        second.close()
    third = open_backend("dgx-h100", catalog=catalog)
    try:
        assert third.gpu_instances(5) == []
    finally:
        third.close()


LIST_SCRIPT = (
    "from migctl.backends.select import open_backend\n"
    "b = open_backend('dgx-h100')\n"
    "print(';'.join(f'{g.profile_name}@{g.placement}' for g in b.gpu_instances(0)))\n"
    "b.create_gpu_instance(0, 14, __import__('migctl.model').model.Placement(2, 2))\n"
    "b.close()\n"
)


def test_consecutive_processes_see_one_machine(h100: NvmlBackend) -> None:
    h100.create_gpu_instance(0, P3G, Placement(4, 4))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(migctl.__file__).parents[1])])
    result = subprocess.run(
        [sys.executable, "-c", LIST_SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3g.40gb@4:4"
    assert placements(h100) == [("2g.20gb", "2:2"), ("3g.40gb", "4:4")]
