"""Every example layout loads, resolves on the simulated machine it is written for, and
can be created there.

Why this exists: examples/ is what users copy; each file must stay valid as the format,
the catalog and the simulator evolve. Each layout of each example is resolved against
the GPUs of its named simulated machine (models and PCI ids read through the NVML
backend, as apply will), and then created on a fresh in-memory simulator, GI by GI and
CI by CI, at placements found by the planner's placement search, so the simulator's
own rules confirm that what resolve accepted really fits. The lead's apply test will
replace the creation part with ``migctl apply``. Test-only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.catalog import load_catalog
from migctl.geometry import Occupant
from migctl.layout import GpuLayout, MachineGpu, load_layouts, place_cis, resolve
from migctl.model import GpuModel, Placement
from migctl.planner.placement import place
from migctl.sim import SimLibrary, open_sim

CATALOG = load_catalog()
EXAMPLES = Path(__file__).parents[2] / "examples"
MACHINE_OF = {
    "inference-h100.yaml": "dgx-h100",
    "balanced-dgx-a100.yaml": "dgx-a100",
    "mig-parted-config.yaml": "mixed-node",
    "mixed-node.yaml": "mixed-node",
    "rtx-pro-6000.yaml": "rtx-pro-6000-node",
    "soft-shares.yaml": "mixed-node",
}
CASES = [
    (name, layout.name)
    for name in sorted(MACHINE_OF)
    for layout in load_layouts(EXAMPLES / name, catalog=CATALOG).layouts
]


@contextmanager
def simulated(machine: str) -> Iterator[NvmlBackend]:
    backend = NvmlBackend(CATALOG, library=SimLibrary(open_sim(f"memory:{machine}", CATALOG)))
    try:
        yield backend
    finally:
        backend.close()


def machine_gpus(backend: NvmlBackend) -> list[MachineGpu]:
    gpus = []
    for info in backend.gpus():
        model = backend.catalog_model(info.index)
        assert model is not None
        gpus.append(MachineGpu(info.index, model, info.pci_device_id))
    return gpus


def planned(model: GpuModel, layout: GpuLayout) -> list[tuple[Occupant, tuple[str, ...]]]:
    """Each wanted GI at a placement (fixed, or found by the planner) with its CI names."""
    pairs: list[tuple[Occupant, tuple[str, ...]]] = []
    unfixed: dict[str, list[tuple[str, ...]]] = {}
    for wanted in layout.instances:
        profile = model.gi_profile(wanted.profile)
        assert profile is not None
        if wanted.start_slice is None:
            unfixed.setdefault(profile.name, []).append(wanted.compute)
        else:
            placement = Placement(wanted.start_slice, profile.memory_slices)
            pairs.append((Occupant(profile, placement), wanted.compute))
    free = [p for p in model.gi_profiles for _ in unfixed.get(p.name, [])]
    placed = place(model, free, [occupant for occupant, _ in pairs])
    assert placed is not None
    pairs.extend((occupant, unfixed[occupant.profile.name].pop()) for occupant in placed)
    return pairs


def create(backend: NvmlBackend, index: int, model: GpuModel, layout: GpuLayout) -> int:
    """Create ``layout`` on a GPU without instances; the number of CIs created."""
    assert backend.set_mig_mode(index, True).done
    created = 0
    for occupant, compute in planned(model, layout):
        gi_profile = occupant.profile
        gi = backend.create_gpu_instance(index, gi_profile.id or 0, occupant.placement)
        offered = {ci.name: ci for ci in model.ci_profiles_for(gi_profile.name)}
        cis = place_cis([offered[name] for name in compute], gi_profile.compute_slices)
        assert cis is not None
        for ci, placement in cis:
            assert placement is not None
            backend.create_compute_instance(index, gi.id, ci.nvml_index, placement)
            created += 1
    return created


def test_every_example_file_is_covered() -> None:
    assert {path.name for path in EXAMPLES.glob("*.yaml")} == set(MACHINE_OF)


@pytest.mark.parametrize(("file_name", "layout_name"), CASES)
def test_example_resolves_and_is_created_on_the_simulator(file_name: str, layout_name: str) -> None:
    layout = load_layouts(EXAMPLES / file_name, catalog=CATALOG).get(layout_name)
    assert layout is not None
    with simulated(MACHINE_OF[file_name]) as backend:
        gpus = machine_gpus(backend)
        result = resolve(layout, gpus)
        assert result, "the example selects no GPU of its machine"
        models = {gpu.index: gpu.model for gpu in gpus}
        for index, wanted in result.items():
            if not wanted.mig_enabled:
                continue
            created = create(backend, index, models[index], wanted)
            assert created == sum(len(w.compute) for w in wanted.instances)
            read_back = Counter(gi.profile_name for gi in backend.gpu_instances(index))
            assert read_back == Counter(w.profile for w in wanted.instances)
            assert len(backend.mig_devices(index)) == created
