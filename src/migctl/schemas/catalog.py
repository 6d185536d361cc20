"""What ``migctl catalog`` prints with ``--output json``: the GPU models migctl knows.

Why this module exists: "which profiles does an H200 have" is asked by scripts too; a model's
summary (catalog list), the whole model (``catalog show``) and the comparison of live GPUs
with the catalog (``catalog check``) have one shape each. GI and CI profiles are the catalog's
own values (``migctl.model``), as the REST API's ``/v1/models`` shows them. Only the CLI
imports this module.
"""

from __future__ import annotations

from pydantic import Field

from migctl.model import CiProfile, GiProfile, GpuModel
from migctl.schemas.base import Wire


class ModelSummaryOut(Wire):
    """One GPU model in the catalog's list."""

    key: str
    name: str
    mig: bool
    max_gpu_instances: int | None
    memory_slices: int | None
    trust: str = Field(description="verified, transcript, documented, partial or captured")
    placements_verified: bool
    pci_device_ids: list[str] = Field(description="16-bit PCI device ids, e.g. 0x2330")
    aliases: list[str]

    @staticmethod
    def fields_of(model: GpuModel) -> dict[str, object]:
        return {
            "key": model.key,
            "name": model.name,
            "mig": model.mig_capable,
            "max_gpu_instances": model.max_gpu_instances,
            "memory_slices": model.memory_slices,
            "trust": model.trust.value,
            "placements_verified": model.placements_verified,
            "pci_device_ids": [f"0x{p:04X}" for p in model.pci_device_ids],
            "aliases": list(model.aliases),
        }

    @classmethod
    def of(cls, model: GpuModel) -> ModelSummaryOut:
        return cls.model_validate(cls.fields_of(model))


class CatalogOut(Wire):
    """``migctl catalog``: every known GPU model (MIG-capable first)."""

    models: list[ModelSummaryOut]


class CatalogModelOut(ModelSummaryOut):
    """``migctl catalog show MODEL``: the model with its GI and CI profiles."""

    confidence: str
    sources: list[str]
    driver_min: str | None
    total_memory_mib: int | None
    gi_profiles: list[GiProfile]
    ci_profiles: list[CiProfile]

    @classmethod
    def of(cls, model: GpuModel) -> CatalogModelOut:
        return cls.model_validate(
            {
                **cls.fields_of(model),
                "confidence": model.confidence,
                "sources": list(model.sources),
                "driver_min": model.driver_min,
                "total_memory_mib": model.total_memory_mib,
                "gi_profiles": list(model.gi_profiles),
                "ci_profiles": list(model.ci_profiles),
            }
        )


class CatalogCheckGpuOut(Wire):
    """One live GPU compared with the catalog."""

    gpu_index: int
    name: str
    catalog_model: str | None
    status: str = Field(description="checked, unknown (not in the catalog) or no-mig")
    differences: list[str]


class CatalogCheckOut(Wire):
    """``migctl catalog check``: every chosen GPU; exit 1 when any differs or is unknown."""

    gpus: list[CatalogCheckGpuOut]
