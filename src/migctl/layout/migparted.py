"""NVIDIA mig-parted configuration files (``version: v1``, ``mig-configs``), read unchanged.

Why this exists: clusters already keep their MIG layouts in mig-parted files (the GPU
operator's ``default-mig-parted-config`` config map, ``config-default.yaml``); migctl must
apply them as they are. The rules follow mig-parted's v1 spec (``api/spec/v1``):

* top level: ``version`` (must be ``v1``) and ``mig-configs`` (named configs, each a
  non-empty list of entries); nothing else;
* entry: ``devices`` (required: ``all`` or a list of GPU indexes), ``mig-enabled``
  (required bool), ``mig-devices`` (profile -> count; required when MIG is enabled, empty
  when it is not; not only zero counts), ``device-filter`` (optional string or list of
  strings, read as Go's ``strconv.ParseUint(s, 0, 32)`` reads them: ``0x233010DE`` is
  device 0x2330 of vendor 0x10DE, ``:0x16C110DE`` adds the subsystem, which must then
  match too; a string that is no such number matches no GPU, as in mig-parted);
* entries are applied in order, so a later entry wins for a GPU two entries match;
  an entry that matches no GPU is skipped; ``devices: all`` skips GPUs without MIG when
  it turns MIG on (mig-parted's apply skips them; its assert fails on them);
* a profile key ``<g>g.<gb>gb[+me]`` counts GIs with their full CI; ``<c>c.<g>g.<gb>gb``
  counts ``<c>``-slice CIs, which share GIs of profile ``<g>g.<gb>gb`` as mig-parted packs
  them (:mod:`migctl.layout.migparted_pack`).

Used by :mod:`migctl.layout.load`.
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
    PciId,
    Selector,
)

VERSION = "v1"
PROFILE_KEY = re.compile(r"(?:\d+c\.)?\d+g\.\d+gb(?:[+-][a-z][a-z0-9.,+-]*)?")
# Go's unsigned integer literals, as strconv.ParseUint(s, 0, 32) accepts them
_GO_UINT = re.compile(
    r"0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?\d)*"
)
MATCHES_NOTHING = PciId(0, 0)  # mig-parted's DeviceID{} for a filter it cannot read


def _go_uint32(text: str) -> int | None:
    """``strconv.ParseUint(text, 0, 32)``; None where Go returns an error."""
    if len(text) > 40 or not _GO_UINT.fullmatch(text):
        return None
    digits = text.replace("_", "")
    if digits[:2].lower() in ("0x", "0b", "0o"):
        value = int(digits, 0)
    elif len(digits) > 1:
        value = int(digits, 8 if digits[0] == "0" else 10)
    else:
        value = int(digits)
    return value if value <= 0xFFFFFFFF else None


def device_filter_id(text: str) -> PciId:
    """A ``device-filter`` string as mig-parted reads it (``NewDeviceIDFromString``)."""
    parts = text.split(":")
    packed = _go_uint32(parts[0])
    subsystem = _go_uint32(parts[1]) if len(parts) == 2 else None
    if packed is None or len(parts) > 2 or (len(parts) == 2 and subsystem is None):
        return MATCHES_NOTHING
    return PciId(packed >> 16, packed & 0xFFFF, subsystem)


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
        if isinstance(items, list) and any(
            isinstance(item, int) and not isinstance(item, bool) for item in items
        ):
            raise custom(
                "device-filter ids must be quoted strings: YAML reads an unquoted 0x... "
                "as a number",
                'quote each id: "0x233010DE"',
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
        pci = tuple(device_filter_id(text) for text in entry.device_filter)
    indexes = None if entry.devices is None else tuple(sorted(set(entry.devices)))
    return Selector(indexes=indexes, pci_ids=pci)


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
    if entry.mig_devices and not any(entry.mig_devices.values()):
        fail(
            source,
            devices_path,
            "every count is 0 (mig-parted refuses this: 'all counts for all MigProfiles are 0')",
            "give at least one profile a count above 0, or write 'mig-devices: {}' for MIG on "
            "without instances",
            line=lines.line_of_path(devices_path),
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
        skips_gpus_without_mig=entry.devices is None,
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
