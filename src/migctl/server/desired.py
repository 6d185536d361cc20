"""The desired layout: what each GPU should hold, remembered so that a reboot loses nothing.

Why this module exists: a reboot or GPU reset wipes MIG instances; the daemon must put them
back at its next start (``startup``). After every successful change it remembers, per GPU, the
layout the change reached (:func:`reached` for an apply, :func:`layout_of` the GPU as it is
after any other change: every GPU and compute instance at its placement, so that re-applying
it recreates exactly that machine and a restart with nothing lost plans no change), in the
``desired_layouts`` table of ``service.db``, with who set it and by which job. Layouts are
stored in the wire form of ``migctl.schemas.layouts.GpuLayoutSpec``.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migctl.model import GpuView
from migctl.planner import DesiredCi, DesiredGi, DesiredLayout
from migctl.reports import ApplyOutcome
from migctl.schemas.layouts import GpuLayoutSpec
from migctl.server.statedb import StateDB


def reached(outcome: ApplyOutcome) -> dict[int, DesiredLayout]:
    """The layout each GPU of a successful apply was brought to (its plan's final layout)."""
    found = {}
    for gpu, plan in sorted(outcome.plans.items()):
        current = outcome.currents.get(gpu)
        mig = plan.mig_mode if plan.mig_mode is not None else current is None or current.mig_enabled
        gis = tuple(
            DesiredGi(
                gi.profile, gi.placement, tuple(DesiredCi(c.profile, c.placement) for c in gi.cis)
            )
            for gi in plan.final
        )
        found[gpu] = DesiredLayout(gis if mig else (), mig)
    return found


def layout_of(view: GpuView, mig_enabled: bool | None = None) -> DesiredLayout:
    """A GPU's layout as it is (``mig_enabled``: the mode asked for, when a change waits)."""
    mig = view.info.mig
    enabled = mig_enabled if mig_enabled is not None else mig is not None and mig.current
    gis = tuple(
        DesiredGi(
            item.gi.profile_name,
            item.gi.placement,
            tuple(DesiredCi(ci.profile_name, ci.placement) for ci in item.cis),
        )
        for item in view.instances
    )
    return DesiredLayout(gis if enabled else (), enabled)


def layouts_of(raw: Mapping[str, Any]) -> dict[int, DesiredLayout]:
    """Per-GPU layouts in the wire form (a journal's target) -> desired layouts."""
    return {int(gpu): GpuLayoutSpec.model_validate(spec).value() for gpu, spec in raw.items()}


@dataclass(frozen=True, slots=True)
class DesiredRow:
    gpu_index: int
    layout: DesiredLayout
    updated_at: float
    updated_by: str
    job_id: int | None


class DesiredStore:
    """The ``desired_layouts`` table: the layout each GPU should have, and who set it."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def rows(self) -> list[DesiredRow]:
        return [
            DesiredRow(
                gpu_index=row["gpu_index"],
                layout=GpuLayoutSpec.model_validate_json(row["layout"]).value(),
                updated_at=row["updated_at"],
                updated_by=row["updated_by"],
                job_id=row["job_id"],
            )
            for row in self._db.read("SELECT * FROM desired_layouts ORDER BY gpu_index")
        ]

    def targets(self) -> dict[int, DesiredLayout]:
        return {row.gpu_index: row.layout for row in self.rows()}

    def put(self, targets: Mapping[int, DesiredLayout], *, by: str, job_id: int | None) -> None:
        now = time.time()
        with self._db.write() as conn:
            for gpu, layout in sorted(targets.items()):
                conn.execute(
                    "INSERT INTO desired_layouts (gpu_index, layout, updated_at, updated_by, job_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gpu_index) DO UPDATE SET"
                    " layout = excluded.layout, updated_at = excluded.updated_at,"
                    " updated_by = excluded.updated_by, job_id = excluded.job_id",
                    (gpu, GpuLayoutSpec.of(layout).model_dump_json(), now, by, job_id),
                )
