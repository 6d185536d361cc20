"""Every legal layout of every catalog model plans, applies, asserts clean, reads back, and
applying it twice changes nothing — on the simulator, moving from layout to layout.

Models the reference describes only in part run with the values the simulator derives
(``migctl.catalog.complete``); the layouts are enumerated from what the simulated GPU
reports, so the two-slice RTX PRO parts (no published placements) are covered too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.catalog import load_catalog
from migctl.engine.apply import apply
from migctl.engine.assertion import check
from migctl.model import GpuModel
from migctl.planner import DesiredGi, DesiredLayout, place

CATALOG = load_catalog()
MACHINE_BY_MODEL = {
    "h100-80gb-hbm3": "memory:h100-single",
    "h200-141gb": "memory:h200-single",
    "a100-sxm4-40gb": "memory:dgx-a100",
    "a30-24gb": "memory:a30-node",
    "rtx-pro-6000-server": "memory:rtx-pro-6000-node",
    "h100-nvl-94gb": "memory:h100-nvl-node",
}


def legal_layouts(model: GpuModel) -> list[tuple[str, ...]]:
    """Every multiset of GI profiles that fits on the GPU in some placement (exact search)."""
    names = sorted(p.name for p in model.gi_profiles)
    seen: set[tuple[str, ...]] = {()}
    frontier: list[tuple[str, ...]] = [()]
    while frontier:
        grown = []
        for layout in frontier:
            for name in names:
                candidate = tuple(sorted((*layout, name)))
                if candidate in seen:
                    continue
                profiles = [model.gi_profile(n) for n in candidate]
                if place(model, [p for p in profiles if p is not None]) is not None:
                    seen.add(candidate)
                    grown.append(candidate)
        frontier = grown
    return sorted(seen, key=lambda t: (len(t), t))


@pytest.fixture
def fast_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Journals on tmpfs when there is one: this test applies hundreds of layouts."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as directory:
        monkeypatch.setenv("MIGCTL_STATE_DIR", directory)
        monkeypatch.setenv("MIGCTL_LEASE_DB", str(Path(directory) / "leases.db"))
        yield


def _backend(model: GpuModel, tmp_path: Path) -> NvmlBackend:
    machine = MACHINE_BY_MODEL.get(model.key)
    if machine is None:
        spec = tmp_path / f"{model.key}.yaml"
        spec.write_text(f"name: {model.key}\ngpus:\n  - model: {model.key}\n")
        machine = f"memory:{spec}"
    return open_backend(machine, catalog=CATALOG)


def test_every_catalog_model_is_covered() -> None:
    assert len(CATALOG.mig_models) == 22  # the reference's MIG models, verified or not


@pytest.mark.timeout(240)
@pytest.mark.parametrize("model", CATALOG.mig_models, ids=lambda m: m.key)
def test_every_legal_layout_applies_and_asserts_clean(
    model: GpuModel, fast_state: None, tmp_path: Path
) -> None:
    backend = _backend(model, tmp_path)
    try:
        simulated = backend.live_model(0)  # what the simulated GPU reports, derived or not
        memory = {p.name: p.memory_mib for p in simulated.gi_profiles}
        layouts = legal_layouts(simulated)
        assert len(layouts) > 10
        # up through the sizes, then back down; one way for placements not verified
        walk = [*layouts, *reversed(layouts)] if model.placements_verified else layouts
        for names in walk:
            target = {0: DesiredLayout(tuple(DesiredGi(n) for n in names))}
            outcome = apply(backend, target)
            assert outcome.error is None, (names, outcome.error)
            assert check(backend, target) == {0: []}, names
            read = sorted((g.profile_name, g.memory_mib) for g in backend.gpu_instances(0))
            assert read == sorted((n, memory[n]) for n in names)
            assert apply(backend, target).noop, names
    finally:
        backend.close()
