"""Write per-GPU layouts back out: as a native layout file or as a mig-parted config.

Why this exists: ``migctl export`` captures a machine's MIG state so it can be kept in
git, reviewed and applied elsewhere; and clusters that run mig-parted need its format.
Identical GPUs are grouped into one entry; GPUs without MIG are written with MIG off, as
mig-parted's export writes them. The native export keeps fixed placements and CI layouts,
so applying an export to the machine it came from changes nothing and loading it
resolves to the same layouts (``resolve(load(export(x))) == x``). A mig-parted config
has no placements and counts compute instances (as mig-parted's ``GetMigConfig`` reads
a GPU: a full CI by its GI's name, others as ``<c>c.<g>g.<gb>gb``); the export says so in
comments, and names the GPUs whose GIs group their CIs differently from how mig-parted
(and migctl) would pack those counts. Pure: builds text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import groupby

import yaml

from migctl.errors import InvalidInputError, NotSupportedError
from migctl.layout import profiles
from migctl.layout.migparted_pack import packed_layout
from migctl.layout.native import API_VERSION, KIND
from migctl.layout.shares import NO_SHARES, GpuShares, spec_text
from migctl.layout.types import NVIDIA_PCI_VENDOR, GpuLayout, PciId, WantedInstance
from migctl.model import GpuModel

HEADER = "# Written by migctl: the MIG layout of each GPU, grouped where GPUs are identical.\n"
MIG_PARTED_NOTE = (
    "# mig-parted configs have no placements: mig-parted and the driver choose where each\n"
    "# instance goes. Fixed placements of the source layout are not kept (see comments).\n"
    "# Counts are of compute instances; those of one GI profile share GPU instances.\n"
)


def _scalar(text: str) -> str:
    """``text`` plain when YAML reads it back as the same string, else double-quoted."""
    plain = text and text[0].isalnum() and all(c.isalnum() or c in "._+-" for c in text)
    if plain and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _flow(items: Sequence[object]) -> str:
    return "[" + ", ".join(_scalar(i) if isinstance(i, str) else str(i) for i in items) + "]"


def _ranges(indexes: Sequence[int]) -> str:
    parts: list[str] = []
    for _, run in groupby(enumerate(indexes), key=lambda pair: pair[1] - pair[0]):
        values = [value for _, value in run]
        parts.append(str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}")
    return ",".join(parts)


def _groups(
    layouts: Mapping[int, GpuLayout], models: Mapping[int, GpuModel], by_model: bool
) -> list[tuple[GpuLayout, list[int]]]:
    """Identical GPUs together (same model too when ``by_model``), by lowest index."""
    grouped: dict[tuple[GpuLayout, str], list[int]] = {}
    for index in sorted(layouts):
        key = (layouts[index], models[index].key if by_model else "")
        grouped.setdefault(key, []).append(index)
    return [(key[0], indexes) for key, indexes in grouped.items()]


def _require_some(layouts: Mapping[int, GpuLayout]) -> None:
    if not layouts:
        raise InvalidInputError(
            "there are no GPUs to export", hint="choose at least one GPU with -i"
        )


def _gpu_comment(indexes: Sequence[int], models: Mapping[int, GpuModel]) -> str:
    names = sorted({models[i].name for i in indexes})
    label = "GPU" if len(indexes) == 1 else "GPUs"
    return f"# {label} {_ranges(indexes)}: {', '.join(names)}"


def _entry_shares(shares: GpuShares, wanted: WantedInstance) -> list[str]:
    """The ``shares`` line of an instance entry: its MIG devices' shares, when they agree."""
    found = {shares.for_device(wanted.profile, ci) for ci in wanted.compute}
    chosen = [s for s in found if s is not None]
    if not chosen:
        return []
    line = f"  shares: {spec_text(chosen[0])}"
    if len(found) > 1:
        return [f"  # the MIG devices of this {wanted.profile} carry different shares", line]
    return [line]


def _instance_lines(
    model: GpuModel, instances: Sequence[WantedInstance], shares: GpuShares = NO_SHARES
) -> list[str]:
    """``instances:`` items: unfixed ones counted, fixed ones with their start slices."""
    grouped: dict[tuple[str, tuple[str, ...], bool], list[WantedInstance]] = {}
    for wanted in instances:
        key = (wanted.profile, wanted.compute, wanted.start_slice is not None)
        grouped.setdefault(key, []).append(wanted)
    lines: list[str] = []
    for (profile_name, compute, fixed), members in grouped.items():
        lines.append(f"- profile: {_scalar(profile_name)}")
        lines.append(f"  count: {len(members)}")
        if fixed:
            lines.append(f"  placement: {_flow([m.start_slice for m in members])}")
        gi = model.gi_profile(profile_name)
        if gi is None or compute != (profiles.default_ci_name(model, gi),):
            lines.append(f"  compute: {_flow(list(compute))}")
        lines.extend(_entry_shares(shares, members[0]))
    return lines


def to_native(
    layouts: Mapping[int, GpuLayout],
    models: Mapping[int, GpuModel],
    *,
    name: str = "exported",
    description: str | None = None,
) -> str:
    """A native layout file with one layout, ``name``, selecting GPUs by index."""
    _require_some(layouts)
    out = [HEADER.rstrip("\n"), f"apiVersion: {API_VERSION}", f"kind: {KIND}", "layouts:"]
    out.append(f"  {_scalar(name)}:")
    if description is not None:
        out.append(f"    description: {json.dumps(description)}")
    out.append("    gpus:")
    for layout, indexes in _groups(layouts, models, by_model=False):
        out.append("      " + _gpu_comment(indexes, models))
        out.append(f"      - select: {{index: {_flow(indexes)}}}")
        out.append(f"        mig: {'true' if layout.mig_enabled else 'false'}")
        if layout.shares.whole is not None:
            out.append(f"        shares: {spec_text(layout.shares.whole)}")
        if layout.instances:
            out.append("        instances:")
            model = models[indexes[0]]
            lines = _instance_lines(model, layout.instances, layout.shares)
            out.extend("          " + line for line in lines)
    return "\n".join(out) + "\n"


def mig_parted_counts(model: GpuModel, layout: GpuLayout) -> dict[str, int]:
    """The ``mig-devices`` of ``layout``, as mig-parted counts a GPU: one per CI."""
    counts: dict[str, int] = {}
    for wanted in layout.instances:
        gi = model.gi_profile(wanted.profile)
        if gi is None:
            raise NotSupportedError(
                f"{model.name} has no GPU instance profile {wanted.profile}",
                hint="export in the native format instead",
            )
        for ci_name in wanted.compute:
            key = profiles.mig_parted_key(model, gi, ci_name)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _grouping(layout: GpuLayout) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((w.profile, tuple(sorted(w.compute))) for w in layout.instances if w.compute)


def _comments(model: GpuModel, layout: GpuLayout, counts: Mapping[str, int]) -> list[str]:
    """What a mig-parted config cannot say about ``layout``, as comment lines."""
    lines = []
    fixed = [
        f"{w.profile} at {w.start_slice}" for w in layout.instances if w.start_slice is not None
    ]
    if fixed:
        lines.append("# placements not kept: " + ", ".join(fixed))
    if not layout.shares.empty:
        lines.append("# soft shares not kept (mig-parted has none): " + layout.shares.describe())
    empty = [w.profile for w in layout.instances if not w.compute]
    if empty:
        lines.append("# GPU instances without compute instances not kept: " + ", ".join(empty))
    if _grouping(layout) != _grouping(packed_layout(model, counts)):
        lines.append(
            "# these GPUs group their compute instances into GPU instances differently from "
            "how mig-parted packs these counts; applied elsewhere, the counts are the same "
            "but the grouping is mig-parted's"
        )
    return lines


def _mig_parted_entry(model: GpuModel, layout: GpuLayout, indexes: Sequence[int]) -> list[str]:
    counts = mig_parted_counts(model, layout) if layout.mig_enabled else {}
    lines = _comments(model, layout, counts)
    filters = [str(PciId(device, NVIDIA_PCI_VENDOR)) for device in model.pci_device_ids]
    first = "- "
    if filters:
        lines.append(f"- device-filter: {_flow(filters)}")
        first = "  "
    lines.append(f"{first}devices: {_flow(indexes)}")
    lines.append(f"  mig-enabled: {'true' if layout.mig_enabled else 'false'}")
    if layout.mig_enabled:
        lines.append("  mig-devices:" + ("" if counts else " {}"))
        lines.extend(f"    {json.dumps(key)}: {count}" for key, count in counts.items())
    return lines


def to_mig_parted(
    layouts: Mapping[int, GpuLayout], models: Mapping[int, GpuModel], *, name: str = "exported"
) -> str:
    """A mig-parted v1 config with one named config, ``name``; one entry per GPU group."""
    _require_some(layouts)
    out = [HEADER.rstrip("\n"), MIG_PARTED_NOTE.rstrip("\n"), "version: v1", "mig-configs:"]
    out.append(f"  {_scalar(name)}:")
    for layout, indexes in _groups(layouts, models, by_model=True):
        out.append("    " + _gpu_comment(indexes, models))
        model = models[indexes[0]]
        out.extend("    " + line for line in _mig_parted_entry(model, layout, indexes))
    return "\n".join(out) + "\n"
