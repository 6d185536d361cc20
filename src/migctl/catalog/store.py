"""Load the catalog and look GPU models up by the names, aliases and PCI ids users have.

Why this exists: a user types ``h100``, ``H100-80GB`` or ``a100-40gb``; NVML reports
``NVIDIA H100 80GB HBM3`` and PCI device id ``0x233010DE``. All of these must find the
same model, and a GPU without MIG must be recognised as such, not as "unknown".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from migctl.catalog.codec import model_from_dict
from migctl.errors import InvalidInputError, NotFoundError, NotSupportedError
from migctl.model import GpuModel

CATALOG_ENV = "MIGCTL_CATALOG"


def normalize_key(text: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"h100-80gb-hbm3"``; ``"H100_80GB"`` -> ``"h100-80gb"``."""
    lowered = text.strip().lower()
    lowered = re.sub(r"^(nvidia|tesla)\s+", "", lowered)
    lowered = re.sub(r"[\s_/()]+", "-", lowered)
    lowered = re.sub(r"-{2,}", "-", lowered)
    return lowered.strip("-")


@dataclass(frozen=True)
class Catalog:
    """An immutable set of GPU models with lookups by key, alias, name and PCI id."""

    models: tuple[GpuModel, ...]
    _by_name: dict[str, GpuModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, GpuModel] = {}
        for model in self.models:  # later models (captures) override earlier ones
            for name in (model.key, *model.aliases, model.nvidia_smi_name, model.name):
                index[normalize_key(name)] = model
        object.__setattr__(self, "_by_name", index)

    @property
    def mig_models(self) -> tuple[GpuModel, ...]:
        return tuple(m for m in self.models if m.mig_capable)

    def find(self, text: str) -> GpuModel | None:
        """A model by key, alias, marketing or nvidia-smi name, or PCI id; None if unknown."""
        key = normalize_key(text)
        if key in self._by_name:
            return self._by_name[key]
        if re.fullmatch(r"(0x)?[0-9a-f]{4}([0-9a-f]{4})?", key):
            return self.by_pci_device_id(int(key, 16))
        return None

    def by_pci_device_id(self, device_id: int) -> GpuModel | None:
        """``0x2330`` or the NVML form ``0x233010DE``."""
        device = device_id >> 16 if device_id > 0xFFFF else device_id
        for model in reversed(self.models):
            if device in model.pci_device_ids:
                return model
        return None

    def for_gpu(self, name: str, pci_device_id: int) -> GpuModel | None:
        """The model of a live GPU: its PCI id first (exact), then its NVML name."""
        return self.by_pci_device_id(pci_device_id) or self.find(name)

    def get(self, text: str) -> GpuModel:
        """Like :meth:`find` but raise a helpful NotFoundError."""
        model = self.find(text)
        if model is None:
            raise NotFoundError(
                f"unknown GPU model {text!r}",
                hint="known MIG GPUs: "
                + ", ".join(m.key for m in self.mig_models)
                + "; see `migctl catalog`",
                context={"model": text},
            )
        return model

    def get_mig(self, text: str) -> GpuModel:
        """A MIG-capable model, or NotSupportedError naming the GPUs that have MIG."""
        model = self.get(text)
        require_mig(model, self)
        return model


def require_mig(model: GpuModel, catalog: Catalog) -> None:
    if not model.mig_capable:
        raise NotSupportedError(
            f"MIG is not supported on {model.name}",
            hint="MIG GPUs: " + ", ".join(sorted({m.key for m in catalog.mig_models})),
            context={"model": model.key},
        )


def _models_in(document: Any, origin: str) -> list[GpuModel]:
    if isinstance(document, dict) and "models" in document:
        entries = document["models"]
    elif isinstance(document, dict) and "gi_profiles" in document:
        entries = [document]
    else:
        raise InvalidInputError(
            f"{origin}: not a migctl catalog file (expected a 'models' list)",
            hint="write one with `migctl catalog capture -f FILE`",
        )
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidInputError(f"{origin}: 'models' must be a list of objects")
    return [model_from_dict(e, origin) for e in entries]


def read_catalog_file(path: Path) -> list[GpuModel]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotFoundError(f"catalog file {path} does not exist") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"catalog file {path} cannot be read: {exc}") from exc
    return _models_in(document, str(path))


PACKAGED = Path(__file__).with_name("data") / "gpus.json"  # package data, a plain file


@cache
def _packaged_models() -> tuple[GpuModel, ...]:
    text = PACKAGED.read_text()  # not importlib.resources: its import costs every CLI run
    return tuple(_models_in(json.loads(text), "packaged catalog"))


def load_catalog(extra: Iterable[Path] | None = None) -> Catalog:
    """The packaged catalog plus captured models from ``extra`` (``Settings.catalog_files``,
    from ``MIGCTL_CATALOG``)."""
    models: list[GpuModel] = list(_packaged_models())
    paths: Sequence[Path] = list(extra or ())
    for path in paths:
        models.extend(read_catalog_file(path))
    return Catalog(tuple(models))
