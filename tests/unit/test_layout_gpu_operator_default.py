"""NVIDIA's GPU Operator default mig-parted config is judged as mig-parted judges it, everywhere.

Why this exists: clusters run the GPU Operator's ``default-mig-parted-config`` unchanged,
so for each of its 81 configs on each simulated machine migctl must reach mig-parted's
verdict: the same GPUs selected (device filters by PCI id, ``devices: all`` passing over
GPUs without MIG when it turns MIG on), the same configs refused, and on every GPU the
same compute instances mig-parted creates. The expected side is the oracle
(``tests/unit/migparted_oracle.py``): mig-parted's selection rules, and its SetMigConfig
run through the simulated driver on a one-GPU machine of each model, results cached per
(model, mig-devices). The config is committed unchanged under tests/data (Apache-2.0,
source in its header). Test-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from migctl.backends.select import open_backend
from migctl.catalog import Catalog
from migctl.errors import MigctlError
from migctl.layout import GpuLayout, Resolution, load_layouts, resolve_machine
from migctl.layout.export import mig_parted_counts
from migctl.model import GpuModel
from migctl.sim.machines import describe_named, named_machine
from tests.unit import migparted_oracle as oracle

DEFAULT = Path(__file__).parents[1] / "data" / "layouts" / "nvidia-gpu-operator-default.yaml"
RAW: dict[str, list[dict[str, Any]]] = yaml.safe_load(DEFAULT.read_text())["mig-configs"]
MACHINES = [name for name, _ in describe_named()]
Outcome = str | dict[str, int]  # "unselected", "skipped", "off", "error", or the CI counts
_RUNS: dict[tuple[str, tuple[tuple[str, int], ...]], dict[str, int] | None] = {}


def set_config(model: GpuModel, counts: dict[str, int], tmp_path: Path) -> dict[str, int] | None:
    """mig-parted's SetMigConfig + GetMigConfig on one GPU of ``model``; None: it fails."""
    key = (model.key, tuple(sorted(counts.items())))
    if key not in _RUNS:
        machine = tmp_path / f"{model.key}.yaml"
        machine.write_text(f"name: one-{model.key}\ngpus:\n  - model: {model.key}\n")
        backend = open_backend(str(machine))
        try:
            mode = backend.gpu(0).mig
            if mode is not None and not mode.current:
                assert backend.set_mig_mode(0, True).done
            ok = oracle.set_mig_config(backend, 0, counts)
            _RUNS[key] = oracle.get_mig_config(backend, 0) if ok else None
        finally:
            backend.close()
    return _RUNS[key]


def mig_parted_apply(
    entries: list[dict[str, Any]], gpus: list[GpuModel], tmp_path: Path
) -> dict[int, Outcome]:
    """Each GPU's outcome of mig-parted's ApplyMigConfig: entries in order, the last wins."""
    outcomes: dict[int, Outcome] = {}
    for entry in entries:
        for index, model in enumerate(gpus):
            device = model.pci_device_ids[0]  # what the simulator reports (subsystem 0)
            if not oracle.matches_entry(entry, index, device, 0):
                continue
            enabled, everything = entry["mig-enabled"], entry["devices"] == "all"
            if not model.mig_capable:
                outcome: Outcome = "skipped" if everything and enabled else "off"
                if enabled and not everything:
                    outcome = "error"
            elif not enabled:
                outcome = "off"
            else:
                result = set_config(model, dict(entry.get("mig-devices") or {}), tmp_path)
                outcome = "error" if result is None else result
            if outcomes.get(index) != "error":
                outcomes[index] = outcome
    return {index: outcomes.get(index, "unselected") for index in range(len(gpus))}


def migctl_outcomes(resolution: Resolution, gpus: list[GpuModel]) -> dict[int, Outcome]:
    found: dict[int, Outcome] = {}
    for index, model in enumerate(gpus):
        layout = resolution.layouts.get(index)
        if index in resolution.unselected:
            found[index] = "unselected"
        elif index in resolution.skipped:
            found[index] = "skipped"
        elif layout == GpuLayout(False):
            found[index] = "off"
        else:
            assert layout is not None
            found[index] = mig_parted_counts(model, layout)
    return found


def test_the_committed_config_is_nvidia_s_and_whole() -> None:
    assert len(RAW) == 81
    assert "all-balanced" in RAW and "all-1g.10gb" in RAW and "all-disabled" in RAW


@pytest.mark.timeout(600)
@pytest.mark.parametrize("machine", MACHINES)
def test_every_config_is_judged_as_mig_parted_judges_it(
    machine: str, catalog: Catalog, tmp_path: Path
) -> None:
    gpus = [catalog.get(gpu.model) for gpu in named_machine(machine, catalog).gpus]
    file = load_layouts(DEFAULT)
    disagreements = []
    for layout in file.layouts:
        expected = mig_parted_apply(RAW[layout.name], gpus, tmp_path)
        try:
            got: dict[int, Outcome] | str = migctl_outcomes(
                resolve_machine(layout, list(enumerate(gpus))), gpus
            )
        except MigctlError as exc:
            got = f"error: {exc.message}"
        if "error" in expected.values():
            agrees = isinstance(got, str)
        else:
            agrees = got == expected
        if not agrees:
            disagreements.append((layout.name, expected, got))
    assert disagreements == []
