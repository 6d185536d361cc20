"""Build migctl's catalog (package data) from the reference geometry file.

Why this exists: the package must not read ``../shared`` at run time, so the facts are
copied, normalised and committed as ``src/migctl/catalog/data/gpus.json``. Run it again
whenever the reference changes::

    python tools/build_catalog.py ../shared/reference/mig-geometry.json

What it adds beyond copying: a stable key and the aliases users type per model, a trust
level per model, the sibling-pattern placements marked unverified, compute-instance
profiles derived from the A100 pattern where none were published (marked ``derived``),
and a short list of popular GPUs without MIG, so that migctl can say so clearly.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from migctl.catalog import codec
from migctl.catalog.derive import derive_ci_profiles

OUT = Path(__file__).resolve().parents[1] / "src" / "migctl" / "catalog" / "data" / "gpus.json"

# Trust per reference entry name, as ../shared/README.md states it.
VERIFIED = {"NVIDIA H100 80GB HBM3 (SXM5)", "NVIDIA H200 (SXM5 141GB)"}
VERIFIED_CONFIDENCE = (
    "verified: every GI profile (ids, SMs, memory, engines, counts, placements) equals a real "
    "NVML capture on driver 580.159.04; CI profiles partly derived"
)
TRANSCRIPT = {
    "NVIDIA A30 (24GB)",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA H100 NVL (94GB)",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition",
}

KEYS_AND_ALIASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "NVIDIA A30 (24GB)": ("a30-24gb", ("a30",)),
    "NVIDIA A100-SXM4-40GB": ("a100-sxm4-40gb", ("a100-40gb", "a100", "a100-sxm-40gb")),
    "NVIDIA A100-PCIE-40GB": ("a100-pcie-40gb", ("a100-40gb-pcie",)),
    "NVIDIA A100-SXM4-80GB": ("a100-sxm4-80gb", ("a100-80gb", "a100-sxm-80gb")),
    "NVIDIA A100 80GB PCIe": ("a100-80gb-pcie", ("a100-pcie-80gb",)),
    "NVIDIA H100 80GB HBM3 (SXM5)": (
        "h100-80gb-hbm3",
        ("h100", "h100-80gb", "h100-sxm", "h100-sxm5", "h100-sxm5-80gb"),
    ),
    "NVIDIA H100 PCIe (80GB)": ("h100-pcie-80gb", ("h100-pcie",)),
    "NVIDIA H100 NVL (94GB)": ("h100-nvl-94gb", ("h100-nvl", "h100-94gb")),
    "NVIDIA GH200 96GB HBM3 (H100 on GH200)": ("gh200-96gb", ("gh200", "gh200-480gb")),
    "NVIDIA GH200 144G HBM3e": ("gh200-144gb", ("gh200-144g",)),
    "NVIDIA H200 (SXM5 141GB)": ("h200-141gb", ("h200", "h200-sxm", "h200-sxm5")),
    "NVIDIA H200 NVL (141GB)": ("h200-nvl-141gb", ("h200-nvl",)),
    "NVIDIA H20 (96GB)": ("h20-96gb", ("h20",)),
    "NVIDIA B200 (180GB)": ("b200-180gb", ("b200",)),
    "NVIDIA GB200 (186GB)": ("gb200-186gb", ("gb200",)),
    "NVIDIA B300 SXM6 AC (288GB)": ("b300-288gb", ("b300", "b300-sxm6")),
    "NVIDIA GB300": ("gb300", ()),
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": (
        "rtx-pro-6000-server",
        ("rtx-pro-6000", "rtx-pro-6000-blackwell-server-edition", "rtxpro6000"),
    ),
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": (
        "rtx-pro-6000-workstation",
        ("rtx-pro-6000-ws",),
    ),
    "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition": (
        "rtx-pro-6000-max-q",
        ("rtx-pro-6000-maxq",),
    ),
    "NVIDIA RTX PRO 5000 Blackwell (48GB)": ("rtx-pro-5000", ("rtx-pro-5000-48gb",)),
    "NVIDIA RTX PRO 4500 Blackwell (32GB)": ("rtx-pro-4500", ("rtx-pro-4500-32gb",)),
}

# Popular GPUs without MIG: enough to recognise them and to simulate a node holding one.
# PCI ids from pci.ids; memory as nvidia-smi prints it in public transcripts, else unknown.
NON_MIG: list[dict[str, Any]] = [
    {"key": "l40s", "name": "NVIDIA L40S", "pci": ["0x26B9"], "mib": 46068, "arch": "Ada"},
    {"key": "l4", "name": "NVIDIA L4", "pci": ["0x27B8"], "mib": 23034, "arch": "Ada"},
    {"key": "t4", "name": "Tesla T4", "pci": ["0x1EB8"], "mib": 15360, "arch": "Turing"},
    {"key": "a10", "name": "NVIDIA A10", "pci": ["0x2236"], "mib": 23028, "arch": "Ampere"},
    {"key": "a40", "name": "NVIDIA A40", "pci": ["0x2235"], "mib": None, "arch": "Ampere"},
    {
        "key": "v100-sxm2-16gb",
        "name": "Tesla V100-SXM2-16GB",
        "pci": ["0x1DB1"],
        "mib": None,
        "arch": "Volta",
        "aliases": ["v100"],
    },
    {
        "key": "v100-sxm2-32gb",
        "name": "Tesla V100-SXM2-32GB",
        "pci": ["0x1DB5"],
        "mib": None,
        "arch": "Volta",
    },
    {
        "key": "v100-pcie-16gb",
        "name": "Tesla V100-PCIE-16GB",
        "pci": ["0x1DB4"],
        "mib": None,
        "arch": "Volta",
    },
    {
        "key": "rtx-4090",
        "name": "NVIDIA GeForce RTX 4090",
        "pci": ["0x2684"],
        "mib": 24564,
        "arch": "Ada",
        "aliases": ["4090", "geforce-rtx-4090"],
    },
    {
        "key": "rtx-5090",
        "name": "NVIDIA GeForce RTX 5090",
        "pci": ["0x2B85"],
        "mib": None,
        "arch": "Blackwell",
        "aliases": ["5090", "geforce-rtx-5090"],
    },
    {
        "key": "rtx-pro-4000",
        "name": "NVIDIA RTX PRO 4000 Blackwell",
        "pci": [],
        "mib": None,
        "arch": "Blackwell",
        "aliases": ["rtx-pro-4000-blackwell"],
    },
]


def pci_id(text: str) -> int:
    """'0x233010DE' -> 0x2330 (the device part; the low 16 bits are NVIDIA's vendor id)."""
    value = int(text, 16)
    return value >> 16 if value > 0xFFFF else value


def trust_of(entry: dict[str, Any]) -> str:
    name = entry["name"]
    if name in VERIFIED:
        return "verified"
    if name in TRANSCRIPT:
        return "transcript"
    incomplete = any(
        p.get("id") is None or p.get("memory_mib") is None for p in entry["gi_profiles"]
    )
    return "partial" if incomplete else "documented"


def gi_profile(raw: dict[str, Any]) -> dict[str, Any]:
    placements = raw.get("placements")
    verified = placements is not None
    if placements is None:
        placements = raw.get("placements_inferred_not_verified") or []
    return {
        "name": raw["name"],
        "nvml_index": raw["nvml_profile_index"],
        "id": raw.get("id"),
        "compute_slices": raw["compute_slices"],
        "memory_slices": raw.get("memory_slices"),
        "memory_mib": raw.get("memory_mib"),
        "sm_count": raw.get("sm_count"),
        "ce": raw.get("ce"),
        "dec": raw.get("dec"),
        "enc": raw.get("enc"),
        "jpeg": raw.get("jpeg"),
        "ofa": raw.get("ofa"),
        "max_instances": raw["max_instances"],
        "placements": [list(p) for p in placements],
        "placements_verified": verified and bool(placements),
        "notes": raw.get("notes") or "",
    }


def ci_profiles(entry: dict[str, Any], gis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    published: dict[tuple[str, int], dict[str, Any]] = {}
    for raw in entry.get("ci_profiles") or []:
        published[(raw["gi_profile"], raw["nvml_ci_profile_index"])] = raw
    result = []
    for gi in gis:
        profile = codec.model_from_dict({"key": "x", "name": "x", "gi_profiles": [gi]}).gi_profiles[
            0
        ]
        for derived in derive_ci_profiles(profile, entry.get("architecture")):
            ci = codec.ci_to_dict(derived)
            raw = published.pop((gi["name"], ci["nvml_index"]), None)
            if raw is not None:
                ci = merge_published_ci(ci, raw)
            result.append(ci)
    for raw in published.values():  # published CIs the pattern does not produce
        size = raw["compute_slices"]
        result.append(
            {
                "gi_profile": raw["gi_profile"],
                "name": raw["name"],
                "nvml_index": raw["nvml_ci_profile_index"],
                "compute_slices": size,
                "sm_count": raw.get("sm_count"),
                "max_instances": raw["max_instances"],
                "placements": raw.get("placements")
                or [[k * size, size] for k in range(raw["max_instances"])],
                "is_default": bool(raw.get("is_default")),
                "derived": False,
                "source": raw.get("source") or "",
            }
        )
    return result


def merge_published_ci(derived: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    merged = dict(derived)
    source = raw.get("source") or ""
    merged.update(
        {
            "name": raw["name"],
            "compute_slices": raw["compute_slices"],
            "derived": False,
        }
    )
    if raw.get("max_instances") is not None:
        merged["max_instances"] = raw["max_instances"]
    if raw.get("sm_count") is not None:
        merged["sm_count"] = raw["sm_count"]
    elif merged["sm_count"] is not None:
        source += "; SM count derived (GI SMs x CI slices / GI slices)"
    merged["source"] = source
    if raw.get("placements"):
        merged["placements"] = raw["placements"]
    if raw.get("is_default") is not None:
        merged["is_default"] = bool(raw["is_default"])
    return merged


def sources_of(entry: dict[str, Any]) -> list[str]:
    src = entry.get("source") or []
    return [src] if isinstance(src, str) else list(src)


def notes_of(entry: dict[str, Any]) -> list[str]:
    notes = entry.get("notes") or []
    notes = [notes] if isinstance(notes, str) else list(notes)
    for key in ("total_memory_note", "sm_count_note", "pci_note", "memory_slices_note"):
        if entry.get(key):
            notes.append(f"{key.removesuffix('_note').replace('_', ' ')}: {entry[key]}")
    capability = entry.get("compute_capability")
    if capability and capability != compute_capability(entry):
        notes.append(f"compute capability: {capability}")
    return notes


def compute_capability(entry: dict[str, Any]) -> str | None:
    """``"10.3 (third-party)"`` -> ``"10.3"`` (the remark goes to the notes): NVML reports
    MAJOR.MINOR, and the simulator must be able to."""
    text = entry.get("compute_capability")
    found = re.match(r"\d+\.\d+", text or "")
    return found.group(0) if found else None


def mig_model(entry: dict[str, Any]) -> dict[str, Any]:
    key, aliases = KEYS_AND_ALIASES[entry["name"]]
    gis = [gi_profile(p) for p in entry["gi_profiles"]]
    return {
        "key": key,
        "name": entry["name"],
        "nvidia_smi_name": entry["nvidia_smi_name"],
        "architecture": entry.get("architecture"),
        "compute_capability": compute_capability(entry),
        "pci_device_ids": [f"0x{pci_id(p):04X}" for p in entry["pci_device_ids"]],
        "memory_slices": entry.get("memory_slices"),
        "compute_slices": entry.get("compute_slices"),
        "max_gpu_instances": entry.get("max_gpu_instances"),
        "total_memory_mib": entry.get("total_memory_mib"),
        "sm_count": entry.get("sm_count"),
        "driver_min": entry.get("driver_min"),
        "trust": trust_of(entry),
        "confidence": VERIFIED_CONFIDENCE
        if entry["name"] in VERIFIED
        else entry.get("confidence") or "",
        "sources": sources_of(entry),
        "notes": notes_of(entry),
        "aliases": list(aliases),
        "mig_capable": True,
        "gi_profiles": gis,
        "ci_profiles": ci_profiles(entry, gis),
    }


def non_mig_model(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": raw["key"],
        "name": raw["name"],
        "nvidia_smi_name": raw["name"],
        "architecture": raw["arch"],
        "compute_capability": None,
        "pci_device_ids": raw["pci"],
        "memory_slices": None,
        "compute_slices": None,
        "max_gpu_instances": None,
        "total_memory_mib": raw["mib"],
        "sm_count": None,
        "driver_min": None,
        "trust": "documented",
        "confidence": "no MIG: listed so that migctl can say so",
        "sources": ["pci.ids (device id); memory as nvidia-smi prints it in public output"],
        "notes": [],
        "aliases": raw.get("aliases", []),
        "mig_capable": False,
        "gi_profiles": [],
        "ci_profiles": [],
    }


def check_key_unique(models: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for model in models:
        for name in [model["key"], *model["aliases"]]:
            if name in seen or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
                sys.exit(f"bad or repeated key/alias {name!r}")
            seen.add(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="path to mig-geometry.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    entries = json.loads(args.reference.read_text())
    models = [mig_model(e) for e in entries] + [non_mig_model(r) for r in NON_MIG]
    check_key_unique(models)
    document = {
        "schema": 1,
        "about": "MIG geometry per GPU model; built by tools/build_catalog.py from "
        "the project's reference mig-geometry.json. null = unknown.",
        "models": models,
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(models)} models to {args.out}")


if __name__ == "__main__":
    main()
