"""Kubernetes: the current layout as NVIDIA MIG manager config, node label and resource names.

Why this exists: a cluster running the NVIDIA GPU Operator partitions GPUs with its MIG manager
(mig-parted) from a ConfigMap, selected per node by the label ``nvidia.com/mig.config=<name>``,
and its device plugin (``mixed`` strategy) advertises each full-GI MIG profile as a resource
``nvidia.com/mig-<profile>`` ('+' becomes '.', so ``1g.10gb+me`` is ``mig-1g.10gb.me``). This
writes what a node partitioned by migctl looks like in those terms:

* a mig-parted ``v1`` config with one entry per MIG-capable GPU: ``device-filter`` (the PCI id
  as ``0x<device>10DE``), ``devices: [index]``, ``mig-enabled`` and ``mig-devices`` counting
  compute instances as mig-parted has since 2022 (``"1c.2g.10gb": 2`` is two compute
  instances packed into GPU instances by mig-parted's own rule; a full one is counted by its
  GI profile name: ``layout.export.mig_parted_counts``); a GPU instance split into several
  compute instances is named in ``notes``, since mig-parted regroups them by its rule;
* the ConfigMap holding it (``data: config.yaml``), the node label, the resources the device
  plugin would advertise, and an example Pod requesting one.

:func:`local_mig_parted_config` builds the config from the inventory's GPU views with the
layout package's counting. Importers: ``migctl.tenancy``, the CLI.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from migctl.errors import UsageError
from migctl.inventory import GpuView

NVIDIA_VENDOR_ID = 0x10DE
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
RESOURCE_PREFIX = "nvidia.com/"
DEFAULT_CONFIGMAP = "migctl-mig-config"
DEFAULT_NAMESPACE = "gpu-operator"
EXAMPLE_IMAGE = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML that writes multi-line strings (the ConfigMap's config.yaml) as ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_str)


def render_documents(documents: Sequence[dict[str, Any]]) -> str:
    """A YAML stream (``---`` between documents), readable multi-line strings."""
    return yaml.dump_all(documents, Dumper=_BlockDumper, sort_keys=False)


def device_filter(pci_device_id: int) -> str:
    """mig-parted's device id: ``0x233010DE`` for device 0x2330 by NVIDIA."""
    return f"0x{pci_device_id:04X}{NVIDIA_VENDOR_ID:04X}"


def mixed_resource_name(profile: str) -> str:
    """The device plugin's ``mixed`` resource: ``nvidia.com/mig-1g.10gb``."""
    return RESOURCE_PREFIX + f"mig-{profile}".replace("+", ".")


def _gpu_entry(view: GpuView) -> dict[str, Any]:
    enabled = bool(view.info.mig and view.info.mig.current)
    entry: dict[str, Any] = {
        "device-filter": device_filter(view.info.pci_device_id),
        "devices": [view.info.index],
        "mig-enabled": enabled,
    }
    if enabled:
        counts = compute_instance_counts(view)
        entry["mig-devices"] = {name: counts[name] for name in sorted(counts)}
    return entry


def compute_instance_counts(view: GpuView) -> dict[str, int]:
    """``mig-devices`` as mig-parted counts this GPU: one per compute instance."""
    if view.model is None:  # no catalog entry: the driver's CI profile names are the keys
        return dict(Counter(ci.profile_name for i in view.instances for ci in i.cis))
    from migctl.layout.export import mig_parted_counts
    from migctl.layout.types import GpuLayout, WantedInstance

    layout = GpuLayout(
        True,
        tuple(
            WantedInstance(
                i.gi.profile_name,
                i.gi.placement.start,
                tuple(ci.profile_name for ci in i.cis),
            )
            for i in view.instances
        ),
    )
    return mig_parted_counts(view.model, layout)


def _split_instances(views: Sequence[GpuView]) -> list[str]:
    notes = []
    for view in views:
        for instance in view.instances:
            if any(ci.profile_name != instance.gi.profile_name for ci in instance.cis):
                notes.append(
                    f"GPU {view.info.index} GI {instance.gi.id} ({instance.gi.profile_name}) is "
                    "split into several compute instances: the config counts them, and "
                    "mig-parted groups counted compute instances into GPU instances by its own "
                    "rule when it applies the config"
                )
    return notes


def local_mig_parted_config(views: Sequence[GpuView], name: str) -> dict[str, Any]:
    """A mig-parted ``v1`` config named ``name`` describing the current MIG layout."""
    check_label_value(name, "--layout-name")
    entries = [_gpu_entry(view) for view in views if view.info.mig is not None]
    return {"version": "v1", "mig-configs": {name: entries}}


def check_label_value(value: str, option: str) -> str:
    if not value or LABEL_VALUE.fullmatch(value) is None:
        raise UsageError(
            f"{option} {value!r} is not a valid Kubernetes label value",
            hint="use at most 63 letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit",
        )
    return value


def _check_name(value: str, pattern: re.Pattern[str], option: str) -> str:
    if pattern.fullmatch(value) is None:
        raise UsageError(
            f"{option} {value!r} is not a valid Kubernetes name",
            hint="use lower-case letters, digits and '-', starting and ending with one of those",
        )
    return value


def advertised_resources(views: Sequence[GpuView]) -> dict[str, int]:
    """Resource name -> count the device plugin (mixed strategy) would advertise."""
    counts: Counter[str] = Counter()
    for view in views:
        for device in view.devices:
            if device.ci_profile == device.gi_profile:
                counts[mixed_resource_name(device.gi_profile)] += 1
    return dict(sorted(counts.items()))


def config_map(config: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"config.yaml": yaml.safe_dump(config, sort_keys=False)},
    }


def example_pod(resource: str, layout_name: str) -> dict[str, Any]:
    """A Pod that asks for one MIG device of ``resource`` on a node with this layout."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mig-example"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {MIG_CONFIG_LABEL: layout_name},
            "containers": [
                {
                    "name": "cuda",
                    "image": EXAMPLE_IMAGE,
                    "command": ["nvidia-smi", "-L"],
                    "resources": {"limits": {resource: 1}},
                }
            ],
        },
    }


@dataclass(frozen=True)
class KubernetesExport:
    layout_name: str
    mig_parted_config: dict[str, Any]
    configmap: dict[str, Any]
    resources: dict[str, int]
    pod: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    @property
    def node_label(self) -> str:
        return f"{MIG_CONFIG_LABEL}={self.layout_name}"


def export_kubernetes(
    views: Sequence[GpuView],
    layout_name: str,
    configmap_name: str = DEFAULT_CONFIGMAP,
    namespace: str = DEFAULT_NAMESPACE,
) -> KubernetesExport:
    """Everything ``migctl k8s export`` prints, as data."""
    _check_name(configmap_name, DNS_SUBDOMAIN, "--configmap")
    _check_name(namespace, DNS_LABEL, "--namespace")
    config = local_mig_parted_config(views, layout_name)
    resources = advertised_resources(views)
    pod = example_pod(next(iter(resources)), layout_name) if resources else None
    notes = _split_instances(views)
    if not resources:
        notes.append("no full-GI MIG devices: the device plugin would advertise no MIG resource")
    return KubernetesExport(
        layout_name,
        config,
        config_map(config, configmap_name, namespace),
        resources,
        pod,
        notes,
    )
