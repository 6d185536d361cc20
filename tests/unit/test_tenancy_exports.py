"""Kubernetes and Slurm exports, checked against the formats' rules and the live machine."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.errors import InvalidStateError, UsageError
from migctl.inventory import machine_view
from migctl.tenancy.devices import exported_devices
from migctl.tenancy.devnodes import node_reader_for, proc_dir_name
from migctl.tenancy.kubernetes import (
    MIG_CONFIG_LABEL,
    export_kubernetes,
    render_documents,
)
from migctl.tenancy.slurm import GresForm, gres_config
from migctl.workflow import (
    create_compute_instances,
    create_gpu_instances,
    parse_profile_requests,
    set_mode,
)
from tests.unit.test_tenancy_devnodes import fake_proc

# Kubernetes object rules (apimachinery validation)
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# mig-parted: "0x<device><vendor>" in upper-case hex
DEVICE_FILTER = re.compile(r"0x[0-9A-F]{4}10DE")
# gres.conf: whitespace-separated KEY=VALUE
GRES_KEYS = {"AutoDetect", "Name", "Type", "File", "MultipleFiles", "Count", "Cores", "Links",
             "Flags", "NodeName"}  # fmt: skip


@pytest.fixture
def machine() -> Iterator[NvmlBackend]:
    """dgx-h100: GPU 0: 1g.10gb x2, 1g.10gb+me, 3g.40gb split 2c+1c; GPU 1: MIG on, 4g.40gb;
    GPUs 2-7: MIG off."""
    backend = open_backend("dgx-h100")
    set_mode(backend, [0, 1], True)
    model = backend.live_model(0)
    requests = parse_profile_requests(model, "1g.10gb,1g.10gb,1g.10gb+me", 0)
    create_gpu_instances(backend, 0, requests, with_ci=True)
    [split] = create_gpu_instances(backend, 0, parse_profile_requests(model, "3g.40gb", 0))
    create_compute_instances(backend, 0, split.gi.id, ["2c.3g.40gb", "1c.3g.40gb"])
    create_gpu_instances(backend, 1, parse_profile_requests(model, "4g.40gb", 1), with_ci=True)
    yield backend
    backend.close()


def check_object(obj: dict[str, Any], kind: str) -> None:
    assert obj["apiVersion"] == "v1" and obj["kind"] == kind
    assert DNS_SUBDOMAIN.fullmatch(obj["metadata"]["name"])
    if "namespace" in obj["metadata"]:
        assert DNS_LABEL.fullmatch(obj["metadata"]["namespace"])


def check_resource_name(name: str) -> None:
    prefix, _, rest = name.partition("/")
    assert prefix == "nvidia.com" and len(name) <= 63
    assert QUALIFIED_NAME.fullmatch(rest) and DNS_SUBDOMAIN.fullmatch(rest), name


def test_configmap_holds_the_current_layout_as_mig_parted_config(machine: NvmlBackend) -> None:
    export = export_kubernetes(machine_view(machine), "team-a.layout")
    check_object(export.configmap, "ConfigMap")
    data = export.configmap["data"]
    assert all(CONFIGMAP_KEY.fullmatch(k) and isinstance(v, str) for k, v in data.items())
    config = yaml.safe_load(data["config.yaml"])
    assert config == export.mig_parted_config
    assert config["version"] == "v1" and list(config["mig-configs"]) == ["team-a.layout"]
    entries = config["mig-configs"]["team-a.layout"]
    gpus = machine.gpus()
    assert [e["devices"] for e in entries] == [[g.index] for g in gpus]
    for entry, gpu in zip(entries, gpus, strict=True):
        assert DEVICE_FILTER.fullmatch(entry["device-filter"])
        assert int(entry["device-filter"][2:6], 16) == gpu.pci_device_id
        assert gpu.mig is not None and entry["mig-enabled"] is gpu.mig.current
        if gpu.mig.current:  # mig-parted counts compute instances (a full CI by its GI profile)
            expected = Counter(
                gi.profile_name if ci.profile_name == gi.profile_name else ci.profile_name
                for gi in machine.gpu_instances(gpu.index)
                for ci in machine.compute_instances(gpu.index, gi.id)
            )
            assert entry["mig-devices"] == dict(expected)
            assert sum(entry["mig-devices"].values()) == len(machine.mig_devices(gpu.index))
        else:
            assert "mig-devices" not in entry
    assert any("split into several compute instances" in note for note in export.notes)


def test_resources_follow_the_device_plugin_mixed_strategy(machine: NvmlBackend) -> None:
    export = export_kubernetes(machine_view(machine), "layout")
    for name in export.resources:
        check_resource_name(name)
    full = [d for gpu in (0, 1) for d in machine.mig_devices(gpu) if d.ci_profile == d.gi_profile]
    assert sum(export.resources.values()) == len(full)  # split CIs are not advertised
    assert export.resources["nvidia.com/mig-1g.10gb"] == 2
    assert export.resources["nvidia.com/mig-1g.10gb.me"] == 1  # '+' becomes '.'
    assert export.resources["nvidia.com/mig-4g.40gb"] == 1
    assert export.node_label == f"{MIG_CONFIG_LABEL}=layout"


def test_example_pod_requests_one_advertised_device(machine: NvmlBackend) -> None:
    export = export_kubernetes(machine_view(machine), "layout")
    pod = export.pod
    assert pod is not None
    check_object(pod, "Pod")
    [container] = pod["spec"]["containers"]
    [(resource, count)] = container["resources"]["limits"].items()
    assert resource in export.resources and count == 1
    assert pod["spec"]["nodeSelector"] == {MIG_CONFIG_LABEL: "layout"}
    stream = list(yaml.safe_load_all(render_documents([export.configmap, pod])))
    assert stream == [export.configmap, pod]


@pytest.mark.parametrize(
    ("layout", "configmap", "namespace"),
    [
        ("bad name", "cm", "ns"),
        ("-dash", "cm", "ns"),
        ("x" * 64, "cm", "ns"),
        ("ok", "Upper", "ns"),
        ("ok", "cm", "two.labels"),
    ],
)
def test_invalid_names_are_refused(
    machine: NvmlBackend, layout: str, configmap: str, namespace: str
) -> None:
    with pytest.raises(UsageError):
        export_kubernetes(machine_view(machine), layout, configmap, namespace)


def parse_gres_line(line: str, keys: set[str] = GRES_KEYS) -> dict[str, str]:
    pairs = dict(token.split("=", 1) for token in line.split())
    assert set(pairs) <= keys, line
    return pairs


def test_gres_autodetect_when_device_files_are_unknown(machine: NvmlBackend) -> None:
    devices = exported_devices(machine)
    config = gres_config(devices, "node7", GresForm.AUTO)
    assert config.form is GresForm.AUTODETECT
    assert [parse_gres_line(line) for line in config.gres_conf] == [{"AutoDetect": "nvml"}]
    with pytest.raises(InvalidStateError, match="unknown"):
        gres_config(devices, "node7", GresForm.FILES)
    check_slurm_conf(config.slurm_conf, devices, "node7")


def check_slurm_conf(lines: list[str], devices: list[Any], node: str) -> None:
    assert lines[0] == "GresTypes=gpu"
    fields = parse_gres_line(lines[1], {"NodeName", "Gres"})
    assert fields["NodeName"] == node
    declared: Counter[str] = Counter()
    for item in fields["Gres"].split(","):
        name, kind, count = item.split(":")
        assert name == "gpu" and count.isdigit()
        declared[kind] += int(count)
    assert declared == Counter(d.device.ci_profile for d in devices)


def test_gres_files_name_every_mig_device_with_its_three_device_files(
    machine: NvmlBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buses = [proc_dir_name(machine.gpu(index).pci_bus_id) for index in (0, 1)]
    table = fake_proc(tmp_path, {buses[0]: 1, buses[1]: 0})  # bus ids derive from the machine
    devices = exported_devices(machine, node_reader_for(machine, tmp_path))
    config = gres_config(devices, "node7", GresForm.AUTO)
    assert config.form is GresForm.FILES
    lines = [parse_gres_line(line) for line in config.gres_conf]
    assert len(lines) == len(devices) == sum(len(machine.mig_devices(g)) for g in (0, 1))
    minors = {0: 1, 1: 0}
    for fields, exported in zip(lines, devices, strict=True):
        device = exported.device
        assert fields["Name"] == "gpu" and fields["Type"] == device.ci_profile
        assert not re.search(r"[\s,:]", fields["Type"])
        minor = minors[device.gpu_index]
        assert fields["MultipleFiles"].split(",") == [
            f"/dev/nvidia{minor}",
            f"/dev/nvidia-caps/nvidia-cap{table[f'gpu{minor}/gi{device.gi_id}/access']}",
            f"/dev/nvidia-caps/nvidia-cap{table[f'gpu{minor}/gi{device.gi_id}/ci{device.ci_id}/access']}",
        ]
    check_slurm_conf(config.slurm_conf, devices, "node7")
    kinds = {d.device.ci_profile for d in devices}
    for request in config.requests:
        match = re.search(r"--gres=gpu:([^:\s]+):(\d+)", request)
        assert match and match.group(1) in kinds and match.group(2) == "1"
    assert "AutoDetect=nvml" in gres_config(devices, "n", GresForm.AUTODETECT).gres_conf


def test_no_mig_devices_nothing_to_export() -> None:
    backend = open_backend("h100-single")
    try:
        with pytest.raises(InvalidStateError):
            gres_config(exported_devices(backend), "n", GresForm.AUTO)
        export = export_kubernetes(machine_view(backend), "off")
        assert export.pod is None and export.resources == {}
        [entry] = export.mig_parted_config["mig-configs"]["off"]
        assert entry["mig-enabled"] is False
    finally:
        backend.close()
