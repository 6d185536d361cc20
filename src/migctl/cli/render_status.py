"""Draw a GPU for ``migctl status``: its memory slices, who holds each, and who uses what.

Why this exists: placement rules are spatial; a drawn slice map ("GI 2 holds slices 0-3,
slices 6-7 are free") explains in one glance why a profile no longer fits. With lease holders
passed in (``status``, ``top``), each MIG device also shows who holds it. Names from outside
(lease holders, jobs, processes, the GPU's reported name) are shown escaped (``output.outside``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from migctl.cli.output import UNKNOWN, lease_text, outside, process_text, table
from migctl.geometry import slice_owners
from migctl.model import GpuView, InstanceView, Placement

if TYPE_CHECKING:
    from migctl.leases import Lease

Holders = Mapping[str, "Lease"]  # MIG device uuid -> its active lease

COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")
CELL = 10


def _label(name: str, profile: str, width: int) -> str:
    for text in (f"{name} {profile}", f"{name}:{profile}", profile, name):
        if len(text) <= width:
            return text
    return name[:width]


def draw_slices(total: int, holders: list[tuple[str, str, Placement]]) -> Text:
    """Two lines: slice numbers, then a bar with each holder's label over its slices.

    ``holders`` are (name, profile, placement), e.g. ("GI 2", "3g.40gb", 4:4).
    """
    owners = slice_owners(total, ((str(i), p) for i, (_, _, p) in enumerate(holders)))
    header = Text("slice  ")
    bar = Text("      |")
    for number in range(total):
        header.append(f"{number:<{CELL}}")
    position = 0
    while position < total:
        owner = owners[position]
        end = position
        while end < total and owners[end] == owner:
            end += 1
        width = (end - position) * CELL - 1
        if owner is None:
            bar.append(f"{'free':^{width}}", style="dim")
        else:
            name, profile, _ = holders[int(owner)]
            style = f"black on {COLORS[int(owner) % len(COLORS)]}"
            bar.append(f"{_label(name, profile, width):^{width}}", style=style)
        bar.append("|")
        position = end
    return Text.assemble(header, "\n", bar)


def slice_map(view: GpuView) -> Text:
    holders = [(f"GI {i.gi.id}", i.gi.profile_name, i.gi.placement) for i in view.instances]
    return draw_slices(view.memory_slices or 0, holders)


def instance_table(view: GpuView, holders: Holders | None = None) -> Table:
    columns = ["GI", "Profile", "Placement", "CI", "MIG device", "Used MiB", "Total MiB"]
    columns += ["Processes", *(["Lease"] if holders is not None else [])]
    rows = table(*columns)
    for instance in view.instances:
        _instance_rows(rows, instance, view, holders)
    return rows


def _instance_rows(
    rows: Table, instance: InstanceView, view: GpuView, holders: Holders | None
) -> None:
    gi = instance.gi
    lease_cells: list[RenderableType] = [] if holders is None else ["-"]
    if not instance.devices:
        rows.add_row(
            str(gi.id),
            gi.profile_name,
            str(gi.placement),
            "-",
            "(no compute instance)",
            "-",
            str(gi.memory_mib or UNKNOWN),
            "-",
            *lease_cells,
        )
        return
    for device in instance.devices:
        procs = [p for p in view.processes if p.gi_id == device.gi_id and p.ci_id == device.ci_id]
        if holders is not None:
            lease_cells = [lease_text(holders.get(device.uuid))]
        rows.add_row(
            str(gi.id),
            device.ci_profile,
            str(gi.placement),
            str(device.ci_id),
            device.uuid,
            str(device.memory_used_mib),
            str(device.memory_total_mib),
            process_text(procs),
            *lease_cells,
        )


def _summary(view: GpuView) -> Text:
    info = view.info
    if info.mig is None:
        mig = "not supported"
    else:
        mig = "enabled" if info.mig.current else "disabled"
        if info.mig.change_pending:
            mig += f" (pending: {'enable' if info.mig.pending else 'disable'} after reset)"
    known = f"{view.model.key} ({view.model.trust.value})" if view.model else "not in catalog"
    return outside(
        f"MIG {mig}   memory {info.memory_used_mib}/{info.memory_total_mib} MiB used   "
        f"catalog {known}   {info.uuid}   {info.pci_bus_id}"
    )


def gpu_panel(view: GpuView, holders: Holders | None = None) -> Panel:
    """One GPU; with ``holders``, a Lease column names each MIG device's lease holder."""
    parts: list[RenderableType] = [_summary(view)]
    mig_on = view.info.mig is not None and view.info.mig.current
    if mig_on and view.memory_slices:
        parts.append(slice_map(view))
        if view.instances:
            parts.append(instance_table(view, holders))
        else:
            parts.append(Text("no GPU instances"))
    elif view.processes:
        parts.append(Text.assemble("processes: ", process_text(list(view.processes))))
    title = outside(f"GPU {view.info.index}: {view.info.name}")
    return Panel(Group(*parts), title=title, title_align="left", expand=False)
