"""Every maximal layout of every verified GPU model is created on the simulator and read back.

Why this exists: a layout the hardware accepts must be accepted by the simulator (and so
by migctl), and read back exactly. A set of GPU instances is *maximal* when no GI of any
profile can be added. This module enumerates those sets with its own rules — written
here, independently of ``migctl.geometry``: a profile starts only at its placements,
memory slices never overlap, at most ``max_instances`` per profile and
``max_gpu_instances`` per GPU, and a ``+me.all`` GI allows only ``-me`` GIs beside it —
then creates each set with explicit placements through ``NvmlBackend``, reads it back
and destroys it. It also checks ``migctl.geometry`` against the same rules. Test-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.catalog import Catalog, load_catalog
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GiProfile, GpuModel, Placement
from migctl.sim import MemoryStore, SimLibrary, SimMachine
from migctl.sim.machine import simulation_gaps
from migctl.sim.machines import machine_from_file


@dataclass(frozen=True)
class Slot:
    """One GI: a profile at one of its placements."""

    profile: GiProfile
    placement: Placement

    def mask(self) -> int:
        return ((1 << self.placement.size) - 1) << self.placement.start


Layout = tuple[Slot, ...]


def verified_keys() -> list[str]:
    return sorted(
        m.key for m in load_catalog().mig_models if m.placements_verified and not simulation_gaps(m)
    )


MODEL_KEYS = verified_keys()


def can_add(model: GpuModel, chosen: Layout, slot: Slot) -> bool:
    """The rules, independently of migctl.geometry."""
    if slot.placement not in slot.profile.placements:
        return False
    if any(other.mask() & slot.mask() for other in chosen):
        return False
    same = sum(1 for other in chosen if other.profile.name == slot.profile.name)
    if same >= slot.profile.max_instances:
        return False
    if model.max_gpu_instances is not None and len(chosen) >= model.max_gpu_instances:
        return False
    if slot.profile.name.endswith("+me.all"):
        return all(other.profile.name.endswith("-me") for other in chosen)
    holds_all_media = any(other.profile.name.endswith("+me.all") for other in chosen)
    return not holds_all_media or slot.profile.name.endswith("-me")


def all_slots(model: GpuModel) -> list[Slot]:
    return [Slot(p, placement) for p in model.gi_profiles for placement in p.placements]


def legal_layouts(model: GpuModel) -> Iterator[tuple[Layout, bool]]:
    """Every legal set of GIs once (slots in catalog order), with whether it is maximal."""
    slots = all_slots(model)

    def extend(start: int, chosen: Layout) -> Iterator[tuple[Layout, bool]]:
        yield chosen, not any(can_add(model, chosen, slot) for slot in slots)
        for position in range(start, len(slots)):
            if can_add(model, chosen, slots[position]):
                yield from extend(position + 1, (*chosen, slots[position]))

    yield from extend(0, ())


def maximal_layouts(model: GpuModel) -> list[Layout]:
    return [layout for layout, maximal in legal_layouts(model) if maximal]


def machine_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / f"one-{key}.yaml"
    path.write_text(f"name: one-{key}\nreset_supported: true\ngpus:\n  - model: {key}\n")
    return path


def memory_backend(path: Path, catalog: Catalog) -> NvmlBackend:
    """A backend over the machine file's machine, its state kept in memory (fast)."""
    machine = SimMachine(MemoryStore(machine_from_file(path, catalog)), catalog)
    return NvmlBackend(catalog, library=SimLibrary(machine), label=path.stem)


def expected(layout: Layout) -> list[tuple[str, Placement]]:
    return sorted((slot.profile.name, slot.placement) for slot in layout)


def create_read_destroy(backend: NvmlBackend, layout: Layout, reverse: bool) -> None:
    order = reversed(layout) if reverse else iter(layout)
    for slot in order:
        assert slot.profile.id is not None
        backend.create_gpu_instance(0, slot.profile.id, slot.placement)
    instances = backend.gpu_instances(0)
    got = sorted((g.profile_name, g.placement) for g in instances)
    assert got == expected(layout)
    assert len({g.id for g in instances}) == len(instances), "GI ids must be unique"
    free = {s.profile.name: s.free for s in backend.gi_profiles(0)}
    assert set(free.values()) == {0}, f"maximal layout {got} still has room: {free}"
    for instance in instances:
        backend.destroy_gpu_instance(0, instance.id)
    assert backend.gpu_instances(0) == []


def test_verified_models_are_covered() -> None:
    expected_keys = {"a30-24gb", "a100-sxm4-40gb", "h100-80gb-hbm3", "h200-141gb"}
    assert expected_keys | {"rtx-pro-6000-server", "h100-nvl-94gb"} <= set(MODEL_KEYS)


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_enumerator_finds_the_known_layouts(catalog: Catalog, key: str) -> None:
    """Sanity of the enumerator itself: the whole GPU and all-smallest are maximal."""
    model = catalog.get(key)
    layouts = {tuple(expected(layout)) for layout in maximal_layouts(model)}
    whole = max(model.gi_profiles, key=lambda p: (p.memory_slices, p.compute_slices))
    assert ((whole.name, whole.placements[0]),) in layouts
    smallest = min(model.gi_profiles, key=lambda p: (p.memory_slices, -p.max_instances))
    count = min(smallest.max_instances, model.max_gpu_instances or smallest.max_instances)
    assert tuple((smallest.name, p) for p in smallest.placements[:count]) in layouts
    assert all(len(layout) <= (model.max_gpu_instances or 99) for layout in layouts)


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_geometry_agrees_with_independent_rules(catalog: Catalog, key: str) -> None:
    model = catalog.get(key)
    slots = all_slots(model)
    for layout, _ in legal_layouts(model):
        occupants = [Occupant(s.profile, s.placement) for s in layout]
        for slot in slots:
            allowed = placement_refusal(model, slot.profile, slot.placement, occupants) is None
            where = (expected(layout), slot.profile.name, slot.placement)
            assert allowed == can_add(model, layout, slot), where


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_every_maximal_layout_is_created_and_read_back(
    catalog: Catalog, tmp_path: Path, key: str
) -> None:
    layouts = maximal_layouts(catalog.get(key))
    assert layouts
    backend = memory_backend(machine_file(tmp_path, key), catalog)
    try:
        assert backend.set_mig_mode(0, True).done
        for number, layout in enumerate(layouts):
            create_read_destroy(backend, layout, reverse=number % 2 == 1)
    finally:
        backend.close()


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_sample_of_maximal_layouts_through_the_state_file(
    catalog: Catalog, tmp_path: Path, key: str
) -> None:
    """The same on the file-backed machine (as the CLI uses it), every 16th layout."""
    layouts = maximal_layouts(catalog.get(key))[::16]
    backend = open_backend(str(machine_file(tmp_path, key)), catalog=catalog)
    try:
        assert backend.set_mig_mode(0, True).done
        for layout in layouts:
            create_read_destroy(backend, layout, reverse=False)
    finally:
        backend.close()
