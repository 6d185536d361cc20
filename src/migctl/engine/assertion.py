"""Does the machine match a layout? And if not, how does it differ, in words.

Why this exists: ``migctl assert`` (CI gates, node health checks) must answer yes or no and
show a readable diff. The planner already knows the difference: the plan that would turn
the current state into the layout, planned as if nothing were busy.
"""

from __future__ import annotations

from collections.abc import Mapping

from migctl.backends.base import Backend
from migctl.engine.apply import plan_machine
from migctl.engine.files import MachineFiles
from migctl.planner import (
    CreateCi,
    CreateGi,
    DesiredLayout,
    DestroyCi,
    DestroyGi,
    Op,
    Plan,
    SetMigMode,
)


def describe_op(op: Op) -> str:
    """A plan step as a difference between the machine and the layout."""
    if isinstance(op, SetMigMode):
        now, wanted = ("off", "on") if op.enabled else ("on", "off")
        return f"MIG mode is {now}; the layout wants it {wanted}"
    if isinstance(op, DestroyGi):
        return f"extra GPU instance {op.gi_id} ({op.profile} at {op.placement})"
    if isinstance(op, DestroyCi):
        return f"extra compute instance {op.ci_id} ({op.profile}) in GPU instance {op.gi_id}"
    if isinstance(op, CreateGi):
        return f"missing GPU instance {op.profile} (would go at {op.placement})"
    if isinstance(op, CreateCi):
        where = (
            f"GPU instance {op.gi.gi_id}"
            if op.gi.gi_id is not None
            else f"the GI at {op.gi.placement}"
        )
        return f"missing compute instance {op.profile} in {where}"
    return str(op)


def differences(plan: Plan) -> list[str]:
    return [describe_op(op) for op in plan.ops]


def check(
    backend: Backend, targets: Mapping[int, DesiredLayout], files: MachineFiles | None = None
) -> dict[int, list[str]]:
    """Per GPU, the differences from the layout (empty lists: it matches)."""
    plans, _ = plan_machine(backend, targets, force=True, files=files)
    return {gpu: differences(plan) for gpu, plan in sorted(plans.items())}
