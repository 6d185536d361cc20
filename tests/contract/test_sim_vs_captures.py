"""Contract: the simulator, driven through the real pynvml, answers like the captured GPUs.

Why this exists: the NVML backend runs unchanged over ``libnvidia-ml.so`` and over the
simulator, so the simulator must give the same answers as the real driver to the same
pynvml calls. The expected answers are the real NVML captures of an H100 80GB HBM3 and
an H200 (``tests/data/captures/*/*_nvml.json``, MIG off, driver 580.159.04): every GI
profile index 0..17 (values, or the same error), possible placements, remaining
capacity, and the device's identity. Test-only; imports pynvml to make the raw calls.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml as nv
import pytest

from migctl.backends.select import open_backend
from migctl.catalog import Catalog

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
CASES = {
    "h100-single": CAPTURES / "h100-80gb-hbm3" / "h100_nvml.json",
    "h200-single": CAPTURES / "h200-141gb" / "h200_nvml.json",
}
INFO_FIELDS = (
    "id",
    "isP2pSupported",
    "sliceCount",
    "instanceCount",
    "multiprocessorCount",
    "copyEngineCount",
    "decoderCount",
    "encoderCount",
    "jpegCount",
    "ofaCount",
    "memorySizeMB",
)


@pytest.fixture(params=sorted(CASES))
def machine(
    request: pytest.FixtureRequest, catalog: Catalog
) -> Iterator[tuple[dict[str, Any], Any]]:
    """(captured NVML document, handle of simulated GPU 0) with the backend open."""
    name: str = request.param
    capture = json.loads(CASES[name].read_text())
    backend = open_backend(name, catalog=catalog)
    try:
        yield capture, nv.nvmlDeviceGetHandleByIndex(0)
    finally:
        backend.close()


def device_of(capture: dict[str, Any]) -> dict[str, Any]:
    devices: list[dict[str, Any]] = capture["devices"]
    assert len(devices) == 1
    return devices[0]


def supported(capture: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in device_of(capture)["gi_profiles"] if "error" not in p]


def placements_of(handle: Any, profile_id: int) -> list[list[int]]:
    """The count-then-fill protocol, as a C caller (and nvidia-smi) uses it."""
    count = ctypes.c_uint(0)
    nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, None, ctypes.byref(count))
    array = (nv.c_nvmlGpuInstancePlacement_t * count.value)()
    nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, array, ctypes.byref(count))
    return [[int(array[i].start), int(array[i].size)] for i in range(count.value)]


def test_profile_info_for_every_index_equals_capture(machine: tuple[dict[str, Any], Any]) -> None:
    capture, handle = machine
    profiles = device_of(capture)["gi_profiles"]
    assert [p["nvml_profile_index"] for p in profiles] == list(range(18))
    for raw in profiles:
        index = raw["nvml_profile_index"]
        for version in (2, 1):
            if "error" in raw:
                with pytest.raises(nv.NVMLError) as caught:
                    nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, version)
                assert str(caught.value) == raw["error"], f"index {index} v{version}"
                continue
            info = nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, version)
            got = {field: int(getattr(info, field)) for field in INFO_FIELDS}
            assert got == {field: raw[field] for field in INFO_FIELDS}, f"index {index}"
            if version == 2:
                name = info.name.decode() if isinstance(info.name, bytes) else info.name
                assert name == raw["name"]


def test_errors_are_the_captured_codes(machine: tuple[dict[str, Any], Any]) -> None:
    capture, handle = machine
    expected_code = {"Not Supported": nv.NVML_ERROR_NOT_SUPPORTED}
    expected_code["Invalid Argument"] = nv.NVML_ERROR_INVALID_ARGUMENT
    errors = [p for p in device_of(capture)["gi_profiles"] if "error" in p]
    assert errors, "the capture lists unsupported indexes"
    for raw in errors:
        with pytest.raises(nv.NVMLError) as caught:
            nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, raw["nvml_profile_index"])
        assert caught.value.value == expected_code[raw["error"]]


def test_possible_placements_equal_capture(machine: tuple[dict[str, Any], Any]) -> None:
    capture, handle = machine
    for raw in supported(capture):
        assert placements_of(handle, raw["id"]) == raw["placements"], f"profile {raw['id']}"


def test_remaining_capacity_with_mig_off_equals_capture(
    machine: tuple[dict[str, Any], Any],
) -> None:
    capture, handle = machine
    for raw in supported(capture):
        free = nv.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, raw["id"])
        assert int(free) == raw["remaining_capacity"], f"profile {raw['id']}"


def test_device_identity_equals_capture(machine: tuple[dict[str, Any], Any]) -> None:
    capture, handle = machine
    device = device_of(capture)
    name = nv.nvmlDeviceGetName(handle)
    assert (name.decode() if isinstance(name, bytes) else name) == device["name"]
    assert int(nv.nvmlDeviceGetPciInfo(handle).pciDeviceId) == int(device["pci_device_id"], 16)
    assert int(nv.nvmlDeviceGetMemoryInfo(handle).total) == device["memory_total_bytes"]
    assert [int(m) for m in nv.nvmlDeviceGetMigMode(handle)] == device["mig_mode"] == [0, 0]
    assert int(nv.nvmlDeviceGetMaxMigDeviceCount(handle)) == device["max_mig_device_count"] == 0
    assert int(nv.nvmlDeviceGetArchitecture(handle)) == device["architecture"]
    assert list(nv.nvmlDeviceGetCudaComputeCapability(handle)) == device["cuda_cc"]
    assert int(nv.nvmlDeviceGetCount()) == len(capture["devices"])


def test_system_versions_equal_capture(machine: tuple[dict[str, Any], Any]) -> None:
    capture, _ = machine

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    assert text(nv.nvmlSystemGetDriverVersion()) == capture["driver"]
    assert text(nv.nvmlSystemGetNVMLVersion()) == capture["nvml"]
    assert int(nv.nvmlSystemGetCudaDriverVersion()) == capture["cuda_driver"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_backend_live_model_reads_back_the_captured_profiles(name: str, catalog: Catalog) -> None:
    """The NVML backend's own reading of the simulated GPU equals the capture too."""
    capture = json.loads(CASES[name].read_text())
    backend = open_backend(name, catalog=catalog)
    try:
        live = backend.live_model(0)
    finally:
        backend.close()
    rows = sorted(
        (raw["nvml_profile_index"], raw["id"], raw["name"].removeprefix("MIG "), raw["placements"])
        for raw in supported(capture)
    )
    got = sorted(
        (p.nvml_index, p.id, p.name, [[x.start, x.size] for x in p.placements])
        for p in live.gi_profiles
    )
    assert got == rows
    assert live.total_memory_mib == device_of(capture)["memory_total_bytes"] // (1024 * 1024)
    assert live.pci_device_ids == (int(device_of(capture)["pci_device_id"], 16) >> 16,)
