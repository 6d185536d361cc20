"""Between layout files and the planner: per-GPU file layouts <-> desired layouts.

Why this exists: files speak in ``WantedInstance`` (profile, optional start slice, CI
profile names); the planner and engine speak in ``DesiredLayout``. The CLI and the
service load a file into engine targets, and export the machine back into a file, here.
mig-parted judges a GPU by its counts of compute instances, not by how they are grouped
into GPU instances: where a GPU already has the counts a mig-parted config asks for,
:func:`keep_matching_counts` makes its current layout the target, so ``apply`` leaves it
alone and ``assert`` passes, as mig-parted's do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path

from migctl.catalog import Catalog, load_catalog
from migctl.errors import InvalidInputError
from migctl.layout.export import mig_parted_counts, to_mig_parted, to_native
from migctl.layout.load import load_layout, parse_layouts, select_layout
from migctl.layout.resolve import resolve
from migctl.layout.shares import NO_SHARES, GpuShares
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


def desired_targets(
    layouts: Mapping[int, GpuLayout], models: Mapping[int, GpuModel]
) -> dict[int, DesiredLayout]:
    """Engine targets for the MIG-capable GPUs among ``layouts`` (nothing to change on others)."""
    return {
        gpu: to_desired(layout, models[gpu])
        for gpu, layout in sorted(layouts.items())
        if models[gpu].mig_capable
    }


def keep_matching_counts(
    targets: Mapping[int, DesiredLayout],
    current: Mapping[int, DesiredLayout],
    models: Mapping[int, GpuModel],
) -> dict[int, DesiredLayout]:
    """``targets`` where a GPU's current compute-instance counts differ; else its current layout.

    For mig-parted configs only: mig-parted's apply skips, and its assert passes, a GPU whose
    counts (``GetMigConfig``) equal the config's, however its CIs share GPU instances.
    """
    kept = dict(targets)
    for gpu, wanted in targets.items():
        now = current.get(gpu)
        if now is None or not (wanted.mig_enabled and now.mig_enabled):
            continue
        model = models[gpu]
        have = mig_parted_counts(model, to_gpu_layout(now, model))
        if have == mig_parted_counts(model, to_gpu_layout(wanted, model)):
            kept[gpu] = now
    return kept


def load_targets(
    path: Path,
    config: str | None,
    models: Mapping[int, GpuModel],
    catalog: Catalog | None = None,
    *,
    only: Collection[int] | None = None,
) -> dict[int, DesiredLayout]:
    """Engine targets for the machine's GPUs (of ``only``) from a layout file."""
    layout = load_layout(path, config, catalog=catalog or load_catalog())
    return desired_targets(resolve(layout, sorted(models.items()), only=only), models)


def targets_from_text(
    text: str,
    config: str | None,
    models: Mapping[int, GpuModel],
    catalog: Catalog | None = None,
    *,
    only: Collection[int] | None = None,
    source: str = "request",
) -> dict[int, DesiredLayout]:
    """Like :func:`load_targets`, for a layout document as text (``source`` names it)."""
    layout = select_layout(
        parse_layouts(text, source=source, catalog=catalog or load_catalog()), config
    )
    return desired_targets(resolve(layout, sorted(models.items()), only=only), models)


def export_text(
    layouts: Mapping[int, DesiredLayout],
    models: Mapping[int, GpuModel],
    fmt: str,
    name: str,
    shares: Mapping[int, GpuShares] | None = None,
) -> str:
    """The layouts as a file: ``native`` (placements kept, and each GPU's soft ``shares``) or
    ``mig-parted`` (counts only)."""
    gpu_layouts = {
        gpu: replace(to_gpu_layout(desired, models[gpu]), shares=(shares or {}).get(gpu, NO_SHARES))
        for gpu, desired in layouts.items()
    }
    if fmt == "mig-parted":
        return to_mig_parted(gpu_layouts, models, name=name)
    return to_native(gpu_layouts, models, name=name)
