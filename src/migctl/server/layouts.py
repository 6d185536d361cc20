"""Layout requests -> desired layouts, checked before anything runs; the desired layout kept.

Why this module exists: an apply job must only be queued for a layout that can exist: unknown
GPUs and profiles, illegal placements and layouts that cannot fit on the GPU model are refused
at request time (422, nothing changed), by planning each target against an *empty* GPU of the
same model — pure, no GPU lock. The daemon also remembers the last desired layout of every GPU
(:class:`DesiredStore`) so that after a reboot, which wipes MIG instances, it can apply it again.

Only ``migctl.server`` imports this module; it uses the engine's codec and intents and the
planner.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from migctl.engine.codec import desired_from_dict, desired_to_dict
from migctl.errors import InsufficientResourcesError, InvalidInputError, NotFoundError
from migctl.model import GpuModel
from migctl.planner import CurrentGpu, DesiredLayout, reconfigure
from migctl.server.http_errors import UnsatisfiableError
from migctl.server.requests import GpuLayoutSpec, LayoutRequest
from migctl.server.statedb import StateDB


def spec_to_desired(spec: GpuLayoutSpec) -> DesiredLayout:
    return desired_from_dict(spec.model_dump())


def desired_to_spec(layout: DesiredLayout) -> GpuLayoutSpec:
    return GpuLayoutSpec.model_validate(desired_to_dict(layout))


@contextmanager
def as_request_error() -> Iterator[None]:
    """Unknown names and impossible layouts in a request body: 422 with the planner's words."""
    try:
        yield
    except NotFoundError as exc:
        raise InvalidInputError(exc.message, hint=exc.hint, context=exc.context) from exc
    except InsufficientResourcesError as exc:
        raise UnsatisfiableError(exc.message, hint=exc.hint, context=exc.context) from exc


def _chosen_models(models: Mapping[int, GpuModel], gpus: list[int] | None) -> dict[int, GpuModel]:
    if gpus is None:
        return dict(models)
    for gpu in gpus:
        _require_gpu(models, gpu)
    return {gpu: models[gpu] for gpu in sorted(set(gpus))}


def _require_gpu(models: Mapping[int, GpuModel], gpu: int) -> None:
    if gpu not in models:
        known = ", ".join(map(str, sorted(models))) or "none"
        raise InvalidInputError(
            f"GPU {gpu} does not exist on this machine or cannot do MIG",
            hint=f"MIG-capable GPUs: {known}",
            context={"gpu": gpu},
        )


def resolve(
    request: LayoutRequest, models: Mapping[int, GpuModel]
) -> tuple[dict[int, DesiredLayout], tuple[str, ...]]:
    """The per-GPU targets a request asks for, and the reasons an intent gave."""
    from migctl.engine import intents

    with as_request_error():
        if request.targets is not None:
            for gpu in request.targets:
                _require_gpu(models, gpu)
            targets = {g: spec_to_desired(s) for g, s in sorted(request.targets.items())}
            return targets, ()
        if request.layout is not None:
            from migctl.layout.bridge import targets_from_text

            # selectors see every GPU (a file may name GPUs outside ``gpus``); only the chosen
            # GPUs are checked and planned, each count bounded before it is expanded
            chosen = _chosen_models(models, request.gpus)
            return targets_from_text(request.layout, request.config, models, only=chosen), ()
        chosen = _chosen_models(models, request.gpus)
        if request.split is not None:
            result = intents.split_layouts(chosen, request.split)
        else:
            assert request.demand is not None
            result = intents.demand_layouts(chosen, request.demand)
        return result.targets, result.reasons


def check_reachable(targets: Mapping[int, DesiredLayout], models: Mapping[int, GpuModel]) -> None:
    """Refuse (422) any target that could not exist even on an empty GPU of its model."""
    with as_request_error():
        for gpu, desired in sorted(targets.items()):
            reconfigure(models[gpu], CurrentGpu(gpu, (), mig_enabled=False), desired, force=True)


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
                layout=desired_from_dict(json.loads(row["layout"])),
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
                    (gpu, json.dumps(desired_to_dict(layout), sort_keys=True), now, by, job_id),
                )
