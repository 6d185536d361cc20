"""Round trips: exporting per-GPU layouts and loading the text back gives them again.

Why this exists: ``migctl export`` followed by ``migctl apply`` must be a no-op, so
``resolve(load(to_native(x))) == x`` must hold for every legal layout, fixed placements
and CI layouts included; and a mig-parted export must load back to the same layouts
minus what mig-parted cannot say (placements). Hypothesis draws machines of random
catalog models (MIG and not) and, per GPU, random legal layouts: profiles are added at
random free placements (checked with ``migctl.geometry``), some placements are then
fixed, and CI layouts are drawn from the GI's CI profiles while they still fit. Test-only.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from migctl.catalog import load_catalog
from migctl.geometry import Occupant, free_placements
from migctl.layout import (
    GpuLayout,
    WantedInstance,
    parse_layouts,
    place_cis,
    resolve,
    select_layout,
    to_mig_parted,
    to_native,
)
from migctl.layout.profiles import default_ci_name
from migctl.model import CiProfile, GiProfile, GpuModel

CATALOG = load_catalog()
MIG_MODELS = [m for m in CATALOG.mig_models if m.plannable]
OTHER_MODELS = [CATALOG.get("l40s"), CATALOG.get("rtx-pro-4000"), CATALOG.get("rtx-pro-5000")]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def compute_layout(draw: st.DrawFn, model: GpuModel, gi: GiProfile) -> tuple[str, ...]:
    kind = draw(st.sampled_from(["default", "default", "cis", "none"]))
    if kind == "default":
        return (default_ci_name(model, gi),)
    if kind == "none":
        return ()
    offered = model.ci_profiles_for(gi.name)
    chosen: list[CiProfile] = []
    for _ in range(draw(st.integers(1, 4))):
        candidate = draw(st.sampled_from(offered))
        if place_cis([*chosen, candidate], gi.compute_slices) is not None:
            chosen.append(candidate)
    return tuple(ci.name for ci in chosen)


@st.composite
def gpu_layout(draw: st.DrawFn, model: GpuModel) -> GpuLayout:
    if not model.plannable:  # no MIG (off), or placements unknown (on, nothing in it)
        return GpuLayout(model.mig_capable and draw(st.booleans()))
    if not draw(st.integers(0, 3)):
        return GpuLayout(False)
    occupants: list[Occupant] = []
    for _ in range(draw(st.integers(0, 8))):
        profile = draw(st.sampled_from(model.gi_profiles))
        free = free_placements(model, profile, occupants)
        if free:
            occupants.append(Occupant(profile, draw(st.sampled_from(free))))
    instances = []
    for occupant in occupants:
        fixed = draw(st.booleans())
        compute = draw(compute_layout(model, occupant.profile))
        start = occupant.placement.start if fixed else None
        instances.append(WantedInstance(occupant.profile.name, start, compute))
    return GpuLayout(True, tuple(instances))


@st.composite
def machines(draw: st.DrawFn) -> tuple[dict[int, GpuModel], dict[int, GpuLayout]]:
    count = draw(st.integers(1, 4))
    pool = st.sampled_from(MIG_MODELS) | st.sampled_from(OTHER_MODELS)
    models = {index: draw(pool) for index in range(count)}
    if draw(st.booleans()):  # several identical GPUs, to exercise grouping
        models = dict.fromkeys(models, models[0])
    layouts = {index: draw(gpu_layout(model)) for index, model in models.items()}
    if models[0] == models[count - 1] and draw(st.booleans()):
        layouts[count - 1] = layouts[0]
    chosen = draw(st.sets(st.sampled_from(sorted(layouts)), min_size=1))
    return models, {index: layouts[index] for index in sorted(chosen)}


def describe(layouts: dict[int, GpuLayout]) -> None:
    """Hypothesis statistics: how often the interesting cases occur."""
    wanted = [w for layout in layouts.values() for w in layout.instances]
    event(f"fixed placements: {any(w.start_slice is not None for w in wanted)}")
    event(f"CI layouts: {any(len(w.compute) != 1 for w in wanted)}")
    event(f"identical GPUs: {len(set(layouts.values())) < len(layouts)}")


def load_back(text: str, models: dict[int, GpuModel]) -> dict[int, GpuLayout]:
    layout = select_layout(parse_layouts(text, source="export.yaml", catalog=CATALOG), "exported")
    return resolve(layout, list(models.items()))


@SETTINGS
@given(machines())
def test_native_export_loads_back_to_the_same_layouts(
    machine: tuple[dict[int, GpuModel], dict[int, GpuLayout]],
) -> None:
    models, layouts = machine
    describe(layouts)
    text = to_native(layouts, models)
    assert load_back(text, models) == layouts
    reordered = dict(sorted(layouts.items(), reverse=True))
    assert to_native(reordered, models) == text  # deterministic, sorted by GPU index


def mig_parted_expressible(layout: GpuLayout, model: GpuModel) -> GpuLayout:
    """Drop placements; keep only GIs with exactly one CI (all mig-parted can say)."""
    kept = [replace(w, start_slice=None) for w in layout.instances if len(w.compute) == 1]
    return GpuLayout(layout.mig_enabled, tuple(kept))


@SETTINGS
@given(machines())
def test_mig_parted_export_loads_back_without_placements(
    machine: tuple[dict[int, GpuModel], dict[int, GpuLayout]],
) -> None:
    models, layouts = machine
    expressible = {i: mig_parted_expressible(g, models[i]) for i, g in layouts.items()}
    text = to_mig_parted(expressible, models)
    assert "placements" in text.splitlines()[1]  # the header says placements are not kept
    assert load_back(text, models) == expressible


@SETTINGS
@given(machines())
def test_mig_parted_export_lists_the_placements_it_drops(
    machine: tuple[dict[int, GpuModel], dict[int, GpuLayout]],
) -> None:
    models, layouts = machine
    single_ci = {
        i: GpuLayout(g.mig_enabled, tuple(w for w in g.instances if len(w.compute) == 1))
        for i, g in layouts.items()
    }
    text = to_mig_parted(single_ci, models)
    for layout in single_ci.values():
        for wanted in layout.instances:
            if wanted.start_slice is not None:
                assert f"{wanted.profile} at {wanted.start_slice}" in text
