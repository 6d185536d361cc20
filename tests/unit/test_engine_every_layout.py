"""Every legal layout of every verified catalog model plans, applies, asserts clean, and
applying it twice changes nothing — on the simulator, moving from layout to layout."""

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
from migctl.sim.machine import simulation_gaps

CATALOG = load_catalog()
MACHINE_BY_MODEL = {
    "h100-80gb-hbm3": "memory:h100-single",
    "h200-141gb": "memory:h200-single",
    "a100-sxm4-40gb": "memory:dgx-a100",
    "a30-24gb": "memory:a30-node",
    "rtx-pro-6000-server": "memory:rtx-pro-6000-node",
    "h100-nvl-94gb": "memory:h100-nvl-node",
}


def verified_models() -> list[GpuModel]:
    return [m for m in CATALOG.mig_models if m.placements_verified and not simulation_gaps(m)]


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


def test_the_verified_models_are_covered() -> None:
    keys = {m.key for m in verified_models()}
    assert {
        "h100-80gb-hbm3",
        "h200-141gb",
        "a30-24gb",
        "rtx-pro-6000-server",
        "a100-sxm4-40gb",
    } <= keys


@pytest.mark.parametrize("model", verified_models(), ids=lambda m: m.key)
def test_every_legal_layout_applies_and_asserts_clean(
    model: GpuModel, fast_state: None, tmp_path: Path
) -> None:
    layouts = legal_layouts(model)
    assert len(layouts) > 10
    backend = _backend(model, tmp_path)
    try:
        for names in [*layouts, *reversed(layouts)]:  # up through the sizes, then back down
            target = {0: DesiredLayout(tuple(DesiredGi(n) for n in names))}
            outcome = apply(backend, target)
            assert outcome.error is None, (names, outcome.error)
            assert check(backend, target) == {0: []}, names
            assert sorted(g.profile_name for g in backend.gpu_instances(0)) == list(names)
            assert apply(backend, target).noop, names
    finally:
        backend.close()
