"""Between layout files and the planner: per-GPU file layouts <-> desired layouts.

Why this exists: files speak in ``WantedInstance`` (profile, optional start slice, CI
profile names); the planner and engine speak in ``DesiredLayout``. The CLI and the
service load a file into engine targets, and export the machine back into a file, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from migctl.catalog import Catalog, load_catalog
from migctl.errors import InvalidInputError
from migctl.layout.export import to_mig_parted, to_native
from migctl.layout.load import load_layout, parse_layouts, select_layout
from migctl.layout.resolve import resolve
from migctl.layout.types import GpuLayout, WantedInstance
from migctl.model import GpuModel, Placement
from migctl.planner import DesiredCi, DesiredGi, DesiredLayout


def _desired_gi(model: GpuModel, wanted: WantedInstance) -> DesiredGi:
    profile = model.gi_profile(wanted.profile)
    if profile is None:  # resolve() already refused unknown profiles
        raise InvalidInputError(f"unknown profile {wanted.profile} for {model.name}")
    placement = (
        None if wanted.start_slice is None else Placement(wanted.start_slice, profile.memory_slices)
    )
    default = next(
        (c.name for c in model.ci_profiles_for(profile.name) if c.is_default), profile.name
    )
    cis = (
        None if wanted.compute == (default,) else tuple(DesiredCi(name) for name in wanted.compute)
    )
    return DesiredGi(profile.name, placement, cis)


def to_desired(layout: GpuLayout, model: GpuModel) -> DesiredLayout:
    return DesiredLayout(tuple(_desired_gi(model, w) for w in layout.instances), layout.mig_enabled)


def to_gpu_layout(desired: DesiredLayout, model: GpuModel) -> GpuLayout:
    instances = []
    for gi in desired.gis:
        if gi.cis is None:
            profile = model.gi_profile(gi.profile)
            default = next(
                (c.name for c in model.ci_profiles_for(gi.profile) if c.is_default),
                profile.name if profile else gi.profile,
            )
            compute: tuple[str, ...] = (default,)
        else:
            compute = tuple(ci.profile for ci in gi.cis)
        start = None if gi.placement is None else gi.placement.start
        instances.append(WantedInstance(gi.profile, start, compute))
    return GpuLayout(desired.mig_enabled, tuple(instances))


def load_targets(
    path: Path, config: str | None, models: Mapping[int, GpuModel], catalog: Catalog | None = None
) -> dict[int, DesiredLayout]:
    """Engine targets for the machine's GPUs from a layout file (native or mig-parted)."""
    layout = load_layout(path, config, catalog=catalog or load_catalog())
    wanted = resolve(layout, sorted(models.items()))
    return {gpu: to_desired(gpu_layout, models[gpu]) for gpu, gpu_layout in sorted(wanted.items())}


def targets_from_text(
    text: str,
    config: str | None,
    models: Mapping[int, GpuModel],
    catalog: Catalog | None = None,
    *,
    source: str = "request",
) -> dict[int, DesiredLayout]:
    """Like :func:`load_targets`, for a layout document as text (``source`` names it)."""
    layout = select_layout(
        parse_layouts(text, source=source, catalog=catalog or load_catalog()), config
    )
    wanted = resolve(layout, sorted(models.items()))
    return {
        gpu: to_desired(gl, models[gpu])
        for gpu, gl in sorted(wanted.items())
        if models[gpu].mig_capable
    }


def export_text(
    layouts: Mapping[int, DesiredLayout], models: Mapping[int, GpuModel], fmt: str, name: str
) -> str:
    """The layouts as a file: ``native`` (placements kept) or ``mig-parted`` (counts only)."""
    gpu_layouts = {gpu: to_gpu_layout(desired, models[gpu]) for gpu, desired in layouts.items()}
    if fmt == "mig-parted":
        return to_mig_parted(gpu_layouts, models, name=name)
    return to_native(gpu_layouts, models, name=name)
