"""Named simulated machines, and custom ones from a small YAML file.

Why this exists: ``--sim dgx-h100`` must give everyone the same 8 x H100 machine, and a
user must be able to describe their own node (models, counts, driver, permissions) in a
few lines, including a GPU model captured with ``migctl catalog capture``::

    name: my-node
    seed: rack7-node3         # optional: identities come from it instead of the name
    driver_version: "580.159.04"
    permissions: allow        # allow | deny | root-only
    reset_supported: true     # false: a pending MIG mode needs a reboot (pass-through VM)
    gpus:
      - model: h100           # any catalog name, alias or PCI id
        count: 4
      - model: ./new-gpu.json # a captured model file, relative to this file

Identities are derived from the machine's ``seed`` (default: its name), deterministically: GPU
UUIDs, serial numbers and the PCI domain of the bus ids (the bus numbers follow a DGX's). MIG
device UUIDs derive from their GPU's UUID. So two simulated machines with different names (or
seeds) never report the same GPU or MIG device UUID, and one machine reports the same ones on
every run.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from migctl.catalog import Catalog, model_to_dict, read_catalog_file
from migctl.errors import InvalidInputError, NotFoundError
from migctl.model import GpuModel
from migctl.sim.state import MachineState, SimGpu

DEFAULT_DRIVER = "580.159.04"
DEFAULT_CUDA = 13000
DGX_BUS_IDS = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")

# name -> (description, [(model, count)], options)
NAMED: dict[str, tuple[str, list[tuple[str, int]], dict[str, Any]]] = {
    "dgx-h100": ("NVIDIA DGX H100: 8 x H100 80GB HBM3", [("h100-80gb-hbm3", 8)], {}),
    "dgx-a100": ("NVIDIA DGX A100: 8 x A100-SXM4-40GB", [("a100-sxm4-40gb", 8)], {}),
    "hgx-h200": ("HGX H200: 8 x H200 141GB", [("h200-141gb", 8)], {}),
    "h100-single": (
        "one H100 80GB HBM3 (like the project's test machine)",
        [("h100-80gb-hbm3", 1)],
        {},
    ),
    "h200-single": ("one H200 141GB", [("h200-141gb", 1)], {}),
    "a30-node": ("a PCIe node with 4 x A30 24GB", [("a30-24gb", 4)], {}),
    "rtx-pro-6000-node": (
        "a server with 8 x RTX PRO 6000 Blackwell Server Edition",
        [("rtx-pro-6000-server", 8)],
        {"driver_version": "610.43.02"},
    ),
    "h100-nvl-node": ("a PCIe node with 2 x H100 NVL", [("h100-nvl-94gb", 2)], {}),
    "mixed-node": (
        "a mixed node: 2 x A100-SXM4-40GB, 2 x H100 80GB HBM3, 1 x A30, 1 x L40S (no MIG)",
        [("a100-sxm4-40gb", 2), ("h100-80gb-hbm3", 2), ("a30-24gb", 1), ("l40s", 1)],
        {},
    ),
    "l40s-node": ("a node with 4 x L40S (no MIG)", [("l40s", 4)], {}),
    "a100-vm": (
        "a pass-through VM with 1 x A100-SXM4-40GB: MIG mode changes need a reboot",
        [("a100-sxm4-40gb", 1)],
        {"reset_supported": False},
    ),
}


def describe_named() -> list[tuple[str, str]]:
    return [(name, spec[0]) for name, spec in NAMED.items()]


def named_models(name: str) -> list[str]:
    """The catalog keys of a named machine's GPU models, in GPU order, once each."""
    return list(dict.fromkeys(model for model, _ in NAMED[name][1]))


def _pci_domain(identity: str) -> int:
    return int(hashlib.sha256(f"migctl-sim/{identity}/pci".encode()).hexdigest()[:4], 16)


def _bus_id(identity: str, position: int, total: int) -> str:
    bus = DGX_BUS_IDS[position] if total <= len(DGX_BUS_IDS) else f"{0x10 + position:02X}"
    return f"{_pci_domain(identity):08X}:{bus}:00.0"


def _gpu_uuid(identity: str, index: int) -> str:
    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"migctl-sim/{identity}/gpu/{index}"))


def serial_number(gpu_uuid: str) -> str:
    """A 13-digit board serial number, derived from the GPU's UUID (so from the seed)."""
    digest = int(hashlib.sha256(f"migctl-sim/serial/{gpu_uuid}".encode()).hexdigest(), 16)
    return f"{digest % 10**13:013d}"


def build_machine(
    name: str,
    gpus: list[GpuModel],
    *,
    driver_version: str = DEFAULT_DRIVER,
    permissions: str = "allow",
    reset_supported: bool = True,
    embedded: dict[str, dict[str, Any]] | None = None,
    seed: str | None = None,
) -> MachineState:
    """A fresh machine; identities derive from ``seed`` (default: ``name``)."""
    identity = seed or name
    sim_gpus = [
        SimGpu(
            index=i,
            model=m.key,
            uuid=_gpu_uuid(identity, i),
            bus_id=_bus_id(identity, i, len(gpus)),
        )
        for i, m in enumerate(gpus)
    ]
    return MachineState(
        name=name,
        driver_version=driver_version,
        cuda_driver_version=DEFAULT_CUDA,
        gpus=sim_gpus,
        permissions=permissions,
        reset_supported=reset_supported,
        models=dict(embedded or {}),
    )


def named_machine(name: str, catalog: Catalog) -> MachineState:
    if name not in NAMED:
        raise NotFoundError(
            f"no simulated machine named {name!r}",
            hint="named machines: " + ", ".join(NAMED) + "; or pass a machine YAML file",
        )
    _, layout, options = NAMED[name]
    gpus = [catalog.get(model) for model, count in layout for _ in range(count)]
    return build_machine(name, gpus, **options)


def _field(raw: dict[str, Any], key: str, kind: type, default: Any, origin: str) -> Any:
    value = raw.get(key, default)
    if not isinstance(value, kind):
        raise InvalidInputError(f"{origin}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _gpus_from_file(
    raw: dict[str, Any], catalog: Catalog, base: Path, origin: str
) -> tuple[list[GpuModel], dict[str, dict[str, Any]]]:
    entries = raw.get("gpus")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{origin}: 'gpus' must be a non-empty list")
    gpus: list[GpuModel] = []
    embedded: dict[str, dict[str, Any]] = {}
    for position, entry in enumerate(entries):
        where = f"{origin}: gpus[{position}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise InvalidInputError(f"{where} needs 'model: NAME' (a catalog name or a file)")
        unknown = set(entry) - {"model", "count"}
        if unknown:
            raise InvalidInputError(f"{where}: unknown key(s) {sorted(unknown)}")
        count = _field(entry, "count", int, 1, where)
        if count < 1 or count > 64:
            raise InvalidInputError(f"{where}: count must be 1..64")
        model = _resolve_model(entry["model"], catalog, base, where, embedded)
        gpus.extend([model] * count)
    return gpus, embedded


def _resolve_model(
    text: str, catalog: Catalog, base: Path, where: str, embedded: dict[str, dict[str, Any]]
) -> GpuModel:
    path = (base / text) if not Path(text).is_absolute() else Path(text)
    if text.endswith(".json"):
        models = read_catalog_file(path)
        for model in models:
            embedded[model.key] = model_to_dict(model)
        return models[0]
    found = catalog.find(text)
    if found is None:
        raise InvalidInputError(f"{where}: unknown GPU model {text!r}", hint="see `migctl catalog`")
    return found


def machine_from_file(path: Path, catalog: Catalog) -> MachineState:
    import yaml  # only custom machine files need it

    origin = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise NotFoundError(f"machine file {path} does not exist") from exc
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"machine file {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{origin}: expected a mapping with 'gpus'")
    allowed = {"name", "seed", "driver_version", "permissions", "reset_supported", "gpus"}
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidInputError(
            f"{origin}: unknown key(s) {sorted(unknown)}", hint=f"allowed: {sorted(allowed)}"
        )
    permissions = _field(raw, "permissions", str, "allow", origin)
    if permissions not in {"allow", "deny", "root-only"}:
        raise InvalidInputError(f"{origin}: permissions must be allow, deny or root-only")
    gpus, embedded = _gpus_from_file(raw, catalog, path.parent, origin)
    seed = raw.get("seed")
    if seed is not None and (not isinstance(seed, str | int) or isinstance(seed, bool)):
        raise InvalidInputError(f"{origin}: 'seed' must be a string or a number, got {seed!r}")
    return build_machine(
        _field(raw, "name", str, path.stem, origin),
        gpus,
        driver_version=str(_field(raw, "driver_version", str, DEFAULT_DRIVER, origin)),
        permissions=permissions,
        reset_supported=_field(raw, "reset_supported", bool, True, origin),
        embedded=embedded,
        seed=None if seed is None else str(seed),
    )
