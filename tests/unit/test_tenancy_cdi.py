"""The CDI spec, checked against the CDI specification's rules (not a text snapshot)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.errors import InvalidStateError, PermissionDeniedError, UsageError
from migctl.tenancy.cdi import generate_spec, refresh_cdi
from migctl.tenancy.devnodes import proc_dir_name
from migctl.workflow import (
    create_compute_instances,
    create_gpu_instances,
    destroy_gpu_instances,
    parse_profile_requests,
    set_mode,
)
from tests.unit.test_tenancy_devnodes import fake_proc

# From the CDI spec (SPEC.md, v0.8.0) and its reference parser (pkg/parser):
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
VENDOR_OR_CLASS = re.compile(r"[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
DEVICE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?")
ANNOTATION_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
TOP_LEVEL = {"cdiVersion", "kind", "annotations", "devices", "containerEdits"}
EDIT_KEYS = {"env", "deviceNodes", "mounts", "hooks", "additionalGids", "intelRdt"}


def check_edits(edits: dict[str, Any]) -> None:
    assert set(edits) <= EDIT_KEYS
    for entry in edits.get("env", []):
        name, sep, _ = entry.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), entry
    for node in edits.get("deviceNodes", []):
        assert set(node) <= {"path", "hostPath", "type", "major", "minor", "fileMode",
                             "permissions", "uid", "gid"}  # fmt: skip
        assert node["path"].startswith("/dev/")


def check_annotations(annotations: dict[str, Any]) -> None:
    for key, value in annotations.items():
        assert ANNOTATION_KEY.fullmatch(key), key
        assert isinstance(value, str), (key, value)


def check_cdi_spec(spec: dict[str, Any]) -> None:
    """Every rule of the CDI spec that a generator can get wrong."""
    assert set(spec) <= TOP_LEVEL and {"cdiVersion", "kind", "devices"} <= set(spec)
    version = SEMVER.fullmatch(spec["cdiVersion"])
    assert version and tuple(map(int, version.groups())) >= (0, 6, 0)  # annotations need 0.6
    vendor, _, device_class = spec["kind"].partition("/")
    assert VENDOR_OR_CLASS.fullmatch(vendor) and VENDOR_OR_CLASS.fullmatch(device_class)
    assert spec["devices"], "a spec must list at least one device"
    names = [device["name"] for device in spec["devices"]]
    assert len(names) == len(set(names)), "device names must be unique"
    for device in spec["devices"]:
        assert DEVICE_NAME.fullmatch(device["name"]), device["name"]
        check_edits(device["containerEdits"])
        check_annotations(device.get("annotations", {}))
    check_annotations(spec.get("annotations", {}))
    check_edits(spec.get("containerEdits", {}))


@pytest.fixture
def machine() -> Iterator[NvmlBackend]:
    """dgx-h100: GPU 0 with 1g.10gb x2 + 3g.40gb split into 2 CIs; GPU 1 with a 7g.80gb."""
    backend = open_backend("dgx-h100")
    set_mode(backend, [0, 1], True)
    model = backend.live_model(0)
    create_gpu_instances(
        backend, 0, parse_profile_requests(model, "1g.10gb,1g.10gb", 0), with_ci=True
    )
    [split] = create_gpu_instances(backend, 0, parse_profile_requests(model, "3g.40gb", 0))
    create_compute_instances(backend, 0, split.gi.id, ["2c.3g.40gb", "1c.3g.40gb"])
    create_gpu_instances(backend, 1, parse_profile_requests(model, "7g.80gb", 1), with_ci=True)
    yield backend
    backend.close()


def _by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {device["name"]: device for device in spec["devices"]}


def test_spec_is_valid_and_names_every_device_twice(machine: NvmlBackend) -> None:
    spec = generate_spec(machine)
    check_cdi_spec(spec)
    assert spec["kind"] == "nvidia.com/gpu"
    devices = [d for gpu in (0, 1) for d in machine.mig_devices(gpu)]
    named = _by_name(spec)
    assert len(named) == 2 * len(devices) == 10
    for device in devices:
        edits = named[device.uuid]["containerEdits"]
        assert edits["env"] == [f"NVIDIA_VISIBLE_DEVICES={device.uuid}"]
    # Index names: GPU index, then the device's position in (GI id, CI id) order on that GPU.
    for gpu in (0, 1):
        ordered = sorted(machine.mig_devices(gpu), key=lambda d: (d.gi_id, d.ci_id))
        for position, device in enumerate(ordered):
            env = named[f"{gpu}:{position}"]["containerEdits"]["env"]
            assert env == [f"NVIDIA_VISIBLE_DEVICES={device.uuid}"]


def test_simulated_machine_lists_no_device_files_and_says_why(machine: NvmlBackend) -> None:
    spec = generate_spec(machine)
    assert all("deviceNodes" not in d["containerEdits"] for d in spec["devices"])
    assert spec["annotations"]["migctl/device-nodes"].startswith("unknown")
    assert {d["annotations"]["migctl/device-nodes"] for d in spec["devices"]} == {"unknown"}
    control = [node["path"] for node in spec["containerEdits"]["deviceNodes"]]
    assert control == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]


def test_device_files_come_from_the_driver_procfs(
    machine: NvmlBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GPU minors deliberately differ from the NVML indexes.
    buses = [proc_dir_name(machine.gpu(index).pci_bus_id) for index in (0, 1)]
    table = fake_proc(tmp_path, {buses[0]: 5, buses[1]: 4})
    spec = generate_spec(machine, proc_root=tmp_path)
    check_cdi_spec(spec)
    named = _by_name(spec)
    minors = {0: 5, 1: 4}
    for gpu in (0, 1):
        for device in machine.mig_devices(gpu):
            minor = minors[gpu]
            gi_cap = table[f"gpu{minor}/gi{device.gi_id}/access"]
            ci_cap = table[f"gpu{minor}/gi{device.gi_id}/ci{device.ci_id}/access"]
            nodes = [n["path"] for n in named[device.uuid]["containerEdits"]["deviceNodes"]]
            assert nodes == [
                f"/dev/nvidia{minor}",
                f"/dev/nvidia-caps/nvidia-cap{gi_cap}",
                f"/dev/nvidia-caps/nvidia-cap{ci_cap}",
            ]
    assert spec["annotations"]["migctl/device-nodes"].startswith("read from")


def test_kind_is_checked(machine: NvmlBackend) -> None:
    check_cdi_spec(generate_spec(machine, kind="example.com/mig"))
    for bad in ("gpu", "nvidia.com/", "nvidia.com/gpu/x", "Nvidia_com/gpu"):
        with pytest.raises(UsageError):
            generate_spec(machine, kind=bad)


def test_refresh_writes_atomically_and_removes_when_nothing_is_left(
    machine: NvmlBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cdi" / "migctl.yaml"
    assert refresh_cdi(machine, target) == target
    written = yaml.safe_load(target.read_text())
    check_cdi_spec(written)
    assert written == generate_spec(machine)
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["migctl.yaml"]  # no temporary left
    for gpu in (0, 1):
        destroy_gpu_instances(machine, gpu, None)
    with pytest.raises(InvalidStateError):
        generate_spec(machine)
    assert refresh_cdi(machine, target) is None and not target.exists()
    assert refresh_cdi(machine, target) is None  # nothing to remove: still fine


def test_unwritable_target_is_a_clear_error(machine: NvmlBackend, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(PermissionDeniedError, match="cannot write the CDI spec"):
        refresh_cdi(machine, blocked / "migctl.yaml")
