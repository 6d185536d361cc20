"""Conformance: the catalog's H100 and H200 entries equal the real hardware captures.

Why this exists: the simulator is built from the catalog, so a wrong catalog value makes
every simulated answer wrong. The captures under ``tests/data/captures/`` were taken on
real GPUs (driver 580.159.04, MIG off) with NVML (``*_nvml.json``) and ``nvidia-smi``
(``-L``, ``-q``, ``mig -lgip``, ``mig -lgipp``). This module parses those files itself
and compares every field with the catalog. Test-only; imports the catalog.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from migctl.catalog import Catalog
from migctl.model import GiProfile, GpuModel, Placement, Trust

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
CASES = [("h100-80gb-hbm3", "h100"), ("h200-141gb", "h200")]
MIB = 1024 * 1024

LGIP_ROW = re.compile(
    r"^\|\s+(?P<gpu>\d+)\s+MIG (?P<name>\S+)\s+(?P<id>\d+)\s+(?P<free>\d+)/(?P<total>\d+)\s+"
    r"(?P<gib>\d+\.\d\d)\s+(?P<p2p>Yes|No)\s+(?P<sm>\d+)\s+(?P<dec>\d+)\s+(?P<enc>\d+)\s+\|$"
)
LGIP_SECOND_ROW = re.compile(r"^\|\s+(?P<ce>\d+)\s+(?P<jpeg>\d+)\s+(?P<ofa>\d+)\s+\|$")
LGIPP_ROW = re.compile(
    r"^GPU\s+(?P<gpu>\d+) Profile ID\s+(?P<id>\d+) Placements?\s*: "
    r"\{(?P<starts>[\d,]+)\}:(?P<size>\d+)$"
)
L_ROW = re.compile(r"^GPU (?P<gpu>\d+): (?P<name>.+) \(UUID: (?P<uuid>GPU-[0-9a-f-]+)\)$")


@dataclass(frozen=True)
class LgipRow:
    """One profile of ``nvidia-smi mig -lgip`` (two table lines)."""

    name: str
    id: int
    free: int
    total: int
    gib_text: str
    p2p: bool
    sm: int
    dec: int
    enc: int
    ce: int
    jpeg: int
    ofa: int


@dataclass(frozen=True)
class Capture:
    device: dict[str, Any]
    nvml: dict[str, Any]
    lgip: list[LgipRow]
    lgipp: dict[int, tuple[Placement, ...]]
    smi_name: str
    query: dict[str, str]


def parse_lgip(text: str) -> list[LgipRow]:
    rows: list[LgipRow] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        first = LGIP_ROW.match(line)
        if first is None:
            continue
        second = LGIP_SECOND_ROW.match(lines[position + 1])
        assert second is not None, f"lgip row {line!r} has no second line"
        rows.append(
            LgipRow(
                name=first["name"],
                id=int(first["id"]),
                free=int(first["free"]),
                total=int(first["total"]),
                gib_text=first["gib"],
                p2p=first["p2p"] == "Yes",
                sm=int(first["sm"]),
                dec=int(first["dec"]),
                enc=int(first["enc"]),
                ce=int(second["ce"]),
                jpeg=int(second["jpeg"]),
                ofa=int(second["ofa"]),
            )
        )
    return rows


def parse_lgipp(text: str) -> dict[int, tuple[Placement, ...]]:
    result: dict[int, tuple[Placement, ...]] = {}
    for line in text.splitlines():
        match = LGIPP_ROW.match(line.strip())
        assert match is not None, f"unparsed lgipp line {line!r}"
        size = int(match["size"])
        starts = [int(s) for s in match["starts"].split(",")]
        result[int(match["id"])] = tuple(Placement(s, size) for s in starts)
    return result


def parse_query(text: str) -> dict[str, str]:
    """A few fields of ``nvidia-smi -q``: product name, architecture, device id, FB total."""
    fields: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            section = line.strip()
            continue
        key = key.strip()
        if key in {"Product Name", "Product Architecture", "Device Id", "Driver Version"}:
            fields.setdefault(key, value.strip())
        elif key == "Total" and section == "FB Memory Usage":
            fields["FB Total"] = value.strip()
        elif not value.strip():
            section = key
    return fields


def load_capture(key: str, prefix: str) -> Capture:
    folder = CAPTURES / key
    nvml = json.loads((folder / f"{prefix}_nvml.json").read_text())
    devices = nvml["devices"]
    assert len(devices) == 1
    l_rows = [L_ROW.match(line) for line in (folder / f"{prefix}_L.txt").read_text().splitlines()]
    assert len(l_rows) == 1 and l_rows[0] is not None
    return Capture(
        device=devices[0],
        nvml=nvml,
        lgip=parse_lgip((folder / f"{prefix}_lgip.txt").read_text()),
        lgipp=parse_lgipp((folder / f"{prefix}_lgipp.txt").read_text()),
        smi_name=l_rows[0]["name"],
        query=parse_query((folder / f"{prefix}_q.txt").read_text()),
    )


@pytest.fixture(params=CASES, ids=[key for key, _ in CASES])
def case(request: pytest.FixtureRequest, catalog: Catalog) -> tuple[Capture, GpuModel]:
    key, prefix = request.param
    return load_capture(key, prefix), catalog.get(key)


def supported_profiles(capture: Capture) -> list[dict[str, Any]]:
    return [p for p in capture.device["gi_profiles"] if "error" not in p]


def by_index(model: GpuModel, nvml_index: int) -> GiProfile:
    found = [p for p in model.gi_profiles if p.nvml_index == nvml_index]
    assert len(found) == 1, f"{model.key}: {len(found)} profiles at NVML index {nvml_index}"
    return found[0]


def test_parsers_read_every_profile(case: tuple[Capture, GpuModel]) -> None:
    capture, _ = case
    assert len(capture.lgip) == len(supported_profiles(capture)) == 7
    assert len(capture.lgipp) == 7
    assert {p["nvml_profile_index"] for p in capture.device["gi_profiles"]} == set(range(18))


def test_catalog_has_exactly_the_supported_nvml_indexes(case: tuple[Capture, GpuModel]) -> None:
    capture, model = case
    supported = {p["nvml_profile_index"] for p in supported_profiles(capture)}
    assert {p.nvml_index for p in model.gi_profiles} == supported


def test_gi_profiles_equal_nvml_field_by_field(case: tuple[Capture, GpuModel]) -> None:
    capture, model = case
    for raw in supported_profiles(capture):
        profile = by_index(model, raw["nvml_profile_index"])
        expected = {
            "id": raw["id"],
            "name": raw["name"].removeprefix("MIG "),
            "compute_slices": raw["sliceCount"],
            "max_instances": raw["instanceCount"],
            "sm_count": raw["multiprocessorCount"],
            "ce": raw["copyEngineCount"],
            "dec": raw["decoderCount"],
            "enc": raw["encoderCount"],
            "jpeg": raw["jpegCount"],
            "ofa": raw["ofaCount"],
            "memory_mib": raw["memorySizeMB"],
            "placements": tuple(Placement(s, z) for s, z in raw["placements"]),
            "memory_slices": raw["placements"][0][1],
        }
        actual = {
            "id": profile.id,
            "name": profile.name,
            "compute_slices": profile.compute_slices,
            "max_instances": profile.max_instances,
            "sm_count": profile.sm_count,
            "ce": profile.engines.ce,
            "dec": profile.engines.dec,
            "enc": profile.engines.enc,
            "jpeg": profile.engines.jpeg,
            "ofa": profile.engines.ofa,
            "memory_mib": profile.memory_mib,
            "placements": profile.placements,
            "memory_slices": profile.memory_slices,
        }
        assert actual == expected, f"{model.key} NVML index {raw['nvml_profile_index']}"
        assert raw["isP2pSupported"] == 0
        assert profile.placements_verified


def test_lgip_table_equals_catalog(case: tuple[Capture, GpuModel]) -> None:
    capture, model = case
    for row in capture.lgip:
        profile = model.gi_profile(row.id)
        assert profile is not None, f"{model.key}: no profile with id {row.id}"
        assert profile.name == row.name
        assert (row.free, row.total) == (profile.max_instances, profile.max_instances)
        assert profile.memory_mib is not None
        assert f"{profile.memory_mib / 1024:.2f}" == row.gib_text
        assert not row.p2p
        assert profile.sm_count == row.sm
        engines = profile.engines
        assert (engines.dec, engines.enc, engines.ce, engines.jpeg, engines.ofa) == (
            row.dec,
            row.enc,
            row.ce,
            row.jpeg,
            row.ofa,
        )
    catalog_ids = sorted(p.id for p in model.gi_profiles if p.id is not None)
    assert sorted(r.id for r in capture.lgip) == catalog_ids


def test_lgipp_placements_equal_catalog(case: tuple[Capture, GpuModel]) -> None:
    capture, model = case
    assert set(capture.lgipp) == {p.id for p in model.gi_profiles}
    for profile_id, placements in capture.lgipp.items():
        profile = model.gi_profile(profile_id)
        assert profile is not None
        assert profile.placements == placements, f"{model.key} profile {profile_id}"


def test_device_identity_equals_catalog(case: tuple[Capture, GpuModel], catalog: Catalog) -> None:
    capture, model = case
    device = capture.device
    assert model.trust is Trust.VERIFIED
    assert model.nvidia_smi_name == capture.smi_name == device["name"]
    assert capture.query["Product Name"] == model.nvidia_smi_name
    pci = int(device["pci_device_id"], 16)
    assert int(capture.query["Device Id"], 16) == pci
    assert model.pci_device_ids == (pci >> 16,)
    assert pci & 0xFFFF == 0x10DE
    assert catalog.for_gpu(device["name"], pci) is model
    assert catalog.by_pci_device_id(pci) is model
    assert device["memory_total_bytes"] % MIB == 0
    assert model.total_memory_mib == device["memory_total_bytes"] // MIB
    assert capture.query["FB Total"] == f"{model.total_memory_mib} MiB"


def test_derived_device_geometry_equals_capture(case: tuple[Capture, GpuModel]) -> None:
    capture, model = case
    profiles = supported_profiles(capture)
    assert model.memory_slices == max(s + z for p in profiles for s, z in p["placements"])
    assert model.compute_slices == max(p["sliceCount"] for p in profiles)
    assert model.sm_count == max(p["multiprocessorCount"] for p in profiles)
    assert model.max_gpu_instances == max(p["instanceCount"] for p in profiles)
    major, minor = capture.device["cuda_cc"]
    assert model.compute_capability == f"{major}.{minor}"
    assert capture.device["architecture"] == 9  # NVML_DEVICE_ARCH_HOPPER
    assert capture.query["Product Architecture"] == "Hopper"
    assert (model.architecture or "").startswith("Hopper")
