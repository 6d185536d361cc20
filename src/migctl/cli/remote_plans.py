"""Plans as the daemon sends them (``Plan.to_dict()``) turned back into ``Plan`` values.

Why this exists: ``migctl plan`` and ``apply --dry-run`` through the daemon must print the same
numbered operations and before/after slice maps as locally (``cli/render_plan.py`` draws
``Plan``s). ``POST /v1/plan`` and apply jobs return plans as dicts; this module decodes them,
and draws the "before" picture from the daemon's inventory. Only ``cli/remote_layouts.py``
imports it.
"""

from __future__ import annotations

from typing import Any

from migctl.inventory import GpuView
from migctl.model import Placement
from migctl.planner import (
    CreateCi,
    CreateGi,
    CurrentGpu,
    DestroyCi,
    DestroyGi,
    GiRef,
    Op,
    Plan,
    PlannedCi,
    PlannedGi,
    SetMigMode,
)

Json = dict[str, Any]


def current_from_view(view: GpuView) -> CurrentGpu:
    """The GPU as the plan renderer's "before" picture."""
    mig_on = view.info.mig is not None and view.info.mig.current
    return CurrentGpu.from_instances(
        view.info.index,
        [i.gi for i in view.instances],
        [ci for i in view.instances for ci in i.cis],
        mig_enabled=mig_on,
    )


def plan_from_dict(raw: Json) -> Plan:
    """A ``Plan.to_dict()`` (as ``POST /v1/plan`` and apply jobs return it) as a Plan."""
    final = tuple(
        PlannedGi(
            gi["profile"],
            Placement.parse(gi["placement"]),
            tuple(
                PlannedCi(c["profile"], Placement.parse(c["placement"]), c["ci_id"])
                for c in gi["cis"]
            ),
            gi["gi_id"],
        )
        for gi in raw["final"]
    )
    return Plan(
        gpu_index=int(raw["gpu"]),
        model_key=raw["model"],
        ops=tuple(_op(op) for op in raw["ops"]),
        final=final,
        kept_gi_ids=tuple(raw["kept_gi_ids"]),
        forced=tuple(raw["forced"]),
        mig_mode=raw["mig_mode"],
    )


def _op(op: Json) -> Op:
    kind, gpu = op["op"], int(op["gpu"])
    if kind == SetMigMode.kind:
        return SetMigMode(gpu, bool(op["enabled"]))
    if kind == DestroyCi.kind:
        return DestroyCi(
            gpu,
            op["gi_id"],
            op["ci_id"],
            op["profile"],
            Placement.parse(op["placement"]),
            op["busy"],
        )
    if kind == DestroyGi.kind:
        return DestroyGi(
            gpu, op["gi_id"], op["profile"], Placement.parse(op["placement"]), op["busy"]
        )
    if kind == CreateGi.kind:
        return CreateGi(gpu, op["profile"], op["profile_id"], Placement.parse(op["placement"]))
    gi = GiRef(Placement.parse(op["gi"]["placement"]), op["gi"]["gi_id"])
    return CreateCi(gpu, gi, op["profile"], op["profile_id"], Placement.parse(op["placement"]))
