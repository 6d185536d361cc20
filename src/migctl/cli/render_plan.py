"""Print plans: numbered operations and a before/after slice map per GPU.

Why this exists: before anyone changes a GPU they want to see, step by step, what will be
destroyed and created where — and who would be disturbed.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.text import Text

from migctl.catalog import Catalog
from migctl.cli.render_status import draw_slices
from migctl.planner import (
    CreateCi,
    CreateGi,
    CurrentGpu,
    DestroyCi,
    DestroyGi,
    Op,
    Plan,
    SetMigMode,
)
from migctl.untrusted import escape


def op_text(op: Op) -> str:
    if isinstance(op, SetMigMode):
        return f"{'enable' if op.enabled else 'disable'} MIG mode"
    if isinstance(op, DestroyCi):
        busy = " (BUSY: forced)" if op.busy else ""
        return (
            f"destroy compute instance {op.ci_id} ({op.profile}) of GPU instance {op.gi_id}{busy}"
        )
    if isinstance(op, DestroyGi):
        busy = " (BUSY: forced)" if op.busy else ""
        return f"destroy GPU instance {op.gi_id} ({op.profile} at {op.placement}){busy}"
    if isinstance(op, CreateGi):
        return f"create GPU instance {op.profile} (profile {op.profile_id}) at {op.placement}"
    if isinstance(op, CreateCi):
        gi = (
            f"GPU instance {op.gi.gi_id}"
            if op.gi.gi_id is not None
            else f"the new GPU instance at {op.gi.placement}"
        )
        return f"create compute instance {op.profile} at {op.placement} in {gi}"
    return str(op)


def _model(catalog: Catalog, plan: Plan, current: CurrentGpu | None) -> tuple[str, int]:
    """The GPU's name and memory slices: the catalog's, else what its placements show."""
    model = catalog.find(plan.model_key)
    if model is not None and model.memory_slices:
        return model.nvidia_smi_name, model.memory_slices
    placements = [gi.placement for gi in plan.final]
    placements += [gi.placement for gi in current.gis] if current is not None else []
    return plan.model_key, max((p.start + p.size for p in placements), default=0)


def print_plans(
    console: Console,
    plans: Mapping[int, Plan],
    currents: Mapping[int, CurrentGpu],
    catalog: Catalog,
    disturbed: Mapping[int, list[str]] | None = None,
) -> None:
    for gpu, plan in sorted(plans.items()):
        current = currents.get(gpu)
        name, total = _model(catalog, plan, current)
        title = f"GPU {gpu} ({name})"
        if plan.is_noop:
            console.print(f"{title}: already as wanted; nothing to do")
            continue
        console.print(f"[bold]{title}[/bold]: {len(plan.ops)} operation(s)")
        for number, op in enumerate(plan.ops, start=1):
            console.print(f"  {number:>2}. {op_text(op)}")
        for line in (disturbed or {}).get(gpu, []):  # names processes and users: escaped
            console.print(Text.assemble("  ", ("disturbs", "yellow"), " ", escape(line)))
        gis = current.gis if current is not None else ()
        before = [(f"GI {gi.gi_id}", gi.profile, gi.placement) for gi in gis]
        after = [
            (f"GI {gi.gi_id}" if gi.gi_id is not None else "new", gi.profile, gi.placement)
            for gi in plan.final
        ]
        console.print("  before:")
        console.print(draw_slices(total, before))
        console.print("  after:")
        console.print(draw_slices(total, after))
