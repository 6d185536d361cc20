"""NVIDIA mig-parted configuration files (``version: v1``, ``mig-configs``), read unchanged.

Why this exists: clusters already keep their MIG layouts in mig-parted files (the GPU
operator's ``default-mig-parted-config`` config map, ``config-default.yaml``); migctl must
apply them as they are. The rules follow mig-parted's v1 spec (``api/spec/v1``):

* top level: ``version`` (must be ``v1``) and ``mig-configs`` (named configs, each a
  non-empty list of entries); nothing else;
* entry: ``devices`` (required: ``all`` or a list of GPU indexes), ``mig-enabled``
  (required bool), ``mig-devices`` (profile -> count; required when MIG is enabled, empty
  when it is not), ``device-filter`` (optional PCI id ``0x233010DE`` or a list of them);
* entries are applied in order, so a later entry wins for a GPU two entries match;
  an entry that matches no GPU is skipped; ``devices: all`` skips GPUs without MIG;
* a profile key ``<g>g.<gb>gb[+me]`` asks for GIs with their full CI; ``<c>c.<g>g.<gb>gb``
  for GIs holding one ``<c>``-slice CI each (one GI per count, as mig-parted creates them).

migctl is stricter in one place: a ``device-filter`` that is not a device+vendor PCI id is
an error (mig-parted silently matches nothing). Used by :mod:`migctl.layout.load`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator

from migctl.layout.problems import LineIndex, fail, join
from migctl.layout.schema_base import StrictModel, custom, validate
from migctl.layout.types import (
    InstanceRule,
    Layout,
    LayoutFile,
    LayoutFormat,
    LayoutRule,
    Selector,
    parse_pci_text,
)

VERSION = "v1"
PROFILE_KEY = re.compile(r"(?:\d+c\.)?\d+g\.\d+gb(?:[+-][a-z][a-z0-9.,+-]*)?")
DEVICE_FILTER = re.compile(r"0x[0-9A-Fa-f]{8}(?::0x[0-9A-Fa-f]{8})?")


class MigPartedEntry(StrictModel):
    device_filter: list[str] | None = Field(default=None, alias="device-filter")
    devices: list[Annotated[int, Field(ge=0)]] | None = Field(alias="devices")
    mig_enabled: bool = Field(alias="mig-enabled")
    mig_devices: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, alias="mig-devices"
    )

    @field_validator("device_filter", mode="before")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        if value == "":
            return []
        items = [value] if isinstance(value, str | int) else value
        if isinstance(items, list):
            if any(isinstance(item, int) and not isinstance(item, bool) for item in items):
                raise custom(
                    "device-filter ids must be quoted strings: YAML reads an unquoted 0x... "
                    "as a number",
                    'quote each id: "0x233010DE"',
                )
            for item in items:
                if isinstance(item, str) and not DEVICE_FILTER.fullmatch(item):
                    raise custom(
                        f"device-filter {item!r} is not a PCI device+vendor id",
                        'write 0x, the 4-digit device and NVIDIA\'s vendor 10DE: "0x233010DE"',
                    )
        return items

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if value == "all":
            return None
        if value is None or isinstance(value, str):
            raise custom(
                f"devices must be 'all' or a list of GPU indexes, got {value!r}",
                "write 'devices: all' or e.g. 'devices: [0, 1]'",
            )
        return value


class MigPartedDocument(StrictModel):
    version: str
    mig_configs: Annotated[
        dict[str, Annotated[list[MigPartedEntry], Field(min_length=1)]], Field(min_length=1)
    ] = Field(alias="mig-configs")


def _selector(entry: MigPartedEntry) -> Selector:
    pci = None
    if entry.device_filter:  # absent or empty: no filter
        parsed = (parse_pci_text(text) for text in entry.device_filter)
        pci = tuple(p for p in parsed if p is not None)
    if entry.devices is None:
        return Selector(pci_ids=pci, mig_capable_only=True)
    return Selector(indexes=tuple(sorted(set(entry.devices))), pci_ids=pci)


def _instances(
    source: str, path: str, entry: MigPartedEntry, lines: LineIndex
) -> tuple[InstanceRule, ...]:
    devices_path = join(path, "mig-devices")
    if not entry.mig_enabled:
        if entry.mig_devices:
            fail(
                source,
                devices_path,
                "MIG devices are listed but 'mig-enabled' is false",
                "set 'mig-enabled: true', or remove 'mig-devices' to turn MIG off",
                line=lines.line_of_path(devices_path),
            )
        return ()
    if entry.mig_devices is None:
        fail(
            source,
            devices_path,
            "missing required key 'mig-devices' when 'mig-enabled' is true",
            "add 'mig-devices: {}' for MIG on without instances, or profile counts",
            line=lines.line_of_path(path),
        )
    rules: list[InstanceRule] = []
    for key, count in entry.mig_devices.items():
        key_path = join(devices_path, key)
        if not PROFILE_KEY.fullmatch(key):
            fail(
                source,
                key_path,
                f"{key!r} is not a MIG profile name",
                "write <g>g.<gb>gb with an optional +me (e.g. 1g.10gb, 1g.10gb+me) or "
                "<c>c.<g>g.<gb>gb for a compute instance profile (e.g. 1c.3g.40gb)",
                line=lines.line_of_path(key_path),
            )
        if count:
            rules.append(InstanceRule(key_path, key, key_path, count, compute_from_name=True))
    return tuple(rules)


def _rule(source: str, path: str, entry: MigPartedEntry, lines: LineIndex) -> LayoutRule:
    return LayoutRule(
        key_path=path,
        selector=_selector(entry),
        mig_enabled=entry.mig_enabled,
        instances=_instances(source, path, entry, lines),
        optional=True,
        mig_path=join(path, "mig-enabled"),
        instances_path=join(path, "mig-devices"),
        select_path=join(path, "devices"),
    )


def read_mig_parted(data: Any, source: str, lines: LineIndex) -> LayoutFile:
    """A mig-parted v1 document (parsed YAML) as a LayoutFile; InvalidInputError if bad."""
    document = validate(MigPartedDocument, data, source, lines)
    if document.version != VERSION:
        fail(
            source,
            "version",
            f"unknown mig-parted config version {document.version!r}",
            f"mig-parted files say 'version: {VERSION}'",
            line=lines.line_of(["version"]),
        )
    layouts: list[Layout] = []
    for name, entries in document.mig_configs.items():
        path = join("mig-configs", name)
        rules = tuple(
            _rule(source, join(path, position), entry, lines)
            for position, entry in enumerate(entries)
        )
        layouts.append(Layout(name, source, LayoutFormat.MIG_PARTED, rules, None, path, lines))
    return LayoutFile(source, LayoutFormat.MIG_PARTED, tuple(layouts))
