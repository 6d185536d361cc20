"""Print plans: numbered operations and a before/after slice map per GPU.

Why this exists: before anyone changes a GPU they want to see, step by step, what will be
destroyed and created where — and who would be disturbed.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.text import Text

from migctl.cli.render_status import draw_slices
from migctl.model import GpuModel
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


def print_plans(
    console: Console,
    plans: Mapping[int, Plan],
    currents: Mapping[int, CurrentGpu],
    models: Mapping[int, GpuModel],
    disturbed: Mapping[int, list[str]] | None = None,
) -> None:
    for gpu, plan in sorted(plans.items()):
        model = models[gpu]
        title = f"GPU {gpu} ({model.nvidia_smi_name})"
        if plan.is_noop:
            console.print(f"{title}: already as wanted; nothing to do")
            continue
        console.print(f"[bold]{title}[/bold]: {len(plan.ops)} operation(s)")
        for number, op in enumerate(plan.ops, start=1):
            console.print(f"  {number:>2}. {op_text(op)}")
        for line in (disturbed or {}).get(gpu, []):  # names processes and users: escaped
            console.print(Text.assemble("  ", ("disturbs", "yellow"), " ", escape(line)))
        total = model.memory_slices or 0
        before = [(f"GI {gi.gi_id}", gi.profile, gi.placement) for gi in currents[gpu].gis]
        after = [
            (f"GI {gi.gi_id}" if gi.gi_id is not None else "new", gi.profile, gi.placement)
            for gi in plan.final
        ]
        console.print("  before:")
        console.print(draw_slices(total, before))
        console.print("  after:")
        console.print(draw_slices(total, after))
