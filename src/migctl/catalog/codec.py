"""Convert catalog models to and from their JSON form (package data and capture files).

Why this exists: one place knows the on-disk shape of a model, so that the packaged
catalog, ``migctl catalog capture`` output and simulator machine files agree.
"""

from __future__ import annotations

from typing import Any

from migctl.errors import InvalidInputError
from migctl.model import CiProfile, Engines, GiProfile, GpuModel, Placement, Trust


def _placements(raw: object) -> tuple[Placement, ...]:
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise TypeError("placements must be a list of [start, size]")
    return tuple(Placement(int(p[0]), int(p[1])) for p in raw)


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer or null, got {value!r}")
    return value


def _gi_from_dict(raw: dict[str, Any]) -> GiProfile:
    return GiProfile(
        name=str(raw["name"]),
        nvml_index=int(raw["nvml_index"]),
        id=_opt_int(raw.get("id")),
        compute_slices=int(raw["compute_slices"]),
        memory_slices=int(raw.get("memory_slices") or 0),
        memory_mib=_opt_int(raw.get("memory_mib")),
        sm_count=_opt_int(raw.get("sm_count")),
        engines=Engines(
            ce=_opt_int(raw.get("ce")),
            dec=_opt_int(raw.get("dec")),
            enc=_opt_int(raw.get("enc")),
            jpeg=_opt_int(raw.get("jpeg")),
            ofa=_opt_int(raw.get("ofa")),
        ),
        max_instances=int(raw["max_instances"]),
        placements=_placements(raw.get("placements")),
        placements_verified=bool(raw.get("placements_verified")),
        notes=str(raw.get("notes") or ""),
    )


def ci_from_dict(raw: dict[str, Any]) -> CiProfile:
    return CiProfile(
        gi_profile=str(raw["gi_profile"]),
        name=str(raw["name"]),
        nvml_index=int(raw["nvml_index"]),
        compute_slices=int(raw["compute_slices"]),
        sm_count=_opt_int(raw.get("sm_count")),
        max_instances=int(raw["max_instances"]),
        placements=_placements(raw.get("placements")),
        is_default=bool(raw.get("is_default")),
        derived=bool(raw.get("derived")),
        source=str(raw.get("source") or ""),
    )


def _pci(text: object) -> int:
    value = int(str(text), 16)
    return value >> 16 if value > 0xFFFF else value


def model_from_dict(raw: dict[str, Any], origin: str = "catalog") -> GpuModel:
    """Build a model from its JSON form; a malformed entry raises InvalidInputError."""
    try:
        return GpuModel(
            key=str(raw["key"]),
            name=str(raw["name"]),
            nvidia_smi_name=str(raw.get("nvidia_smi_name") or raw["name"]),
            architecture=raw.get("architecture"),
            compute_capability=raw.get("compute_capability"),
            pci_device_ids=tuple(_pci(p) for p in raw.get("pci_device_ids") or ()),
            memory_slices=_opt_int(raw.get("memory_slices")),
            compute_slices=_opt_int(raw.get("compute_slices")),
            max_gpu_instances=_opt_int(raw.get("max_gpu_instances")),
            total_memory_mib=_opt_int(raw.get("total_memory_mib")),
            sm_count=_opt_int(raw.get("sm_count")),
            driver_min=raw.get("driver_min"),
            gi_profiles=tuple(_gi_from_dict(p) for p in raw.get("gi_profiles") or ()),
            ci_profiles=tuple(ci_from_dict(c) for c in raw.get("ci_profiles") or ()),
            trust=Trust(raw.get("trust", "partial")),
            confidence=str(raw.get("confidence") or ""),
            sources=tuple(str(s) for s in raw.get("sources") or ()),
            notes=tuple(str(n) for n in raw.get("notes") or ()),
            aliases=tuple(str(a) for a in raw.get("aliases") or ()),
            mig_capable=bool(raw.get("mig_capable", True)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        name = raw.get("key") or raw.get("name") or "?"
        raise InvalidInputError(
            f"{origin}: GPU model {name!r} is malformed: {exc}",
            hint="regenerate the file with `migctl catalog capture`",
        ) from exc


def _placement_list(placements: tuple[Placement, ...]) -> list[list[int]]:
    return [[p.start, p.size] for p in placements]


def model_to_dict(model: GpuModel) -> dict[str, Any]:
    """The JSON form read by :func:`model_from_dict` (round-trips exactly)."""
    return {
        "key": model.key,
        "name": model.name,
        "nvidia_smi_name": model.nvidia_smi_name,
        "architecture": model.architecture,
        "compute_capability": model.compute_capability,
        "pci_device_ids": [f"0x{p:04X}" for p in model.pci_device_ids],
        "memory_slices": model.memory_slices,
        "compute_slices": model.compute_slices,
        "max_gpu_instances": model.max_gpu_instances,
        "total_memory_mib": model.total_memory_mib,
        "sm_count": model.sm_count,
        "driver_min": model.driver_min,
        "trust": model.trust.value,
        "confidence": model.confidence,
        "sources": list(model.sources),
        "notes": list(model.notes),
        "aliases": list(model.aliases),
        "mig_capable": model.mig_capable,
        "gi_profiles": [gi_to_dict(p) for p in model.gi_profiles],
        "ci_profiles": [ci_to_dict(c) for c in model.ci_profiles],
    }


def gi_to_dict(p: GiProfile) -> dict[str, Any]:
    return {
        "name": p.name,
        "nvml_index": p.nvml_index,
        "id": p.id,
        "compute_slices": p.compute_slices,
        "memory_slices": p.memory_slices,
        "memory_mib": p.memory_mib,
        "sm_count": p.sm_count,
        "ce": p.engines.ce,
        "dec": p.engines.dec,
        "enc": p.engines.enc,
        "jpeg": p.engines.jpeg,
        "ofa": p.engines.ofa,
        "max_instances": p.max_instances,
        "placements": _placement_list(p.placements),
        "placements_verified": p.placements_verified,
        "notes": p.notes,
    }


def ci_to_dict(c: CiProfile) -> dict[str, Any]:
    return {
        "gi_profile": c.gi_profile,
        "name": c.name,
        "nvml_index": c.nvml_index,
        "compute_slices": c.compute_slices,
        "sm_count": c.sm_count,
        "max_instances": c.max_instances,
        "placements": _placement_list(c.placements),
        "is_default": c.is_default,
        "derived": c.derived,
        "source": c.source,
    }
