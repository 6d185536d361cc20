"""A modelled machine for the trace replayer: GPU instances, who holds them, since when idle.

Why this exists: replaying thousands of requests through the simulator (or NVML) would be slow
and would test the simulator, not the policy. This model keeps only what the policy depends
on: per GPU its instances (profile, placement, one default compute instance each), the
request holding each one, when each went idle, and instances still being created by a
reshape. Every change is checked against ``migctl.geometry``'s rules, so an illegal plan
fails loudly instead of flattering the results. Imported only by ``migctl.repartition.replay``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.errors import InvalidInputError, InvalidStateError
from migctl.geometry import Occupant, gi_id_for, placement_refusal
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner import CreateCi, CurrentCi, CurrentGi, CurrentGpu, DestroyCi, DestroyGi
from migctl.planner.profiles import resolve_profile
from migctl.repartition.decision import Reshape
from migctl.repartition.view import GpuView

NEVER = float("-inf")


@dataclass
class ModelGi:
    """One GPU instance with its single default compute instance (CI id 0)."""

    gi_id: int
    profile: GiProfile
    placement: Placement
    ci_name: str
    ci_placement: Placement
    holder: str | None = None  # the request whose lease holds its device
    idle_since: float = NEVER
    ready_at: float = NEVER  # before this it is still being created (held by its request)


@dataclass
class ModelGpu:
    index: int
    model: GpuModel
    gis: dict[int, ModelGi] = field(default_factory=dict)
    reconfiguring_until: float = NEVER

    @property
    def total_slices(self) -> int:
        return self.model.memory_slices or 0

    def occupants(self) -> list[Occupant]:
        return [Occupant(g.profile, g.placement) for g in self.gis.values()]

    def create(self, profile: GiProfile, placement: Placement) -> ModelGi:
        refusal = placement_refusal(self.model, profile, placement, self.occupants())
        if refusal is not None:
            raise InvalidStateError(f"GPU {self.index}: cannot create {profile.name}: {refusal}")
        default = next(
            (c for c in self.model.ci_profiles_for(profile.name) if c.is_default and c.placements),
            None,
        )
        ci_name = default.name if default else profile.name
        ci_placement = default.placements[0] if default else Placement(0, profile.compute_slices)
        gi = ModelGi(gi_id_for(self.model, placement), profile, placement, ci_name, ci_placement)
        self.gis[gi.gi_id] = gi
        return gi

    def busy_slices(self, now: float) -> int:
        return sum(g.placement.size for g in self.gis.values() if g.holder and g.ready_at <= now)

    def view(self, now: float) -> GpuView:
        gis = []
        idle: dict[tuple[int, int], float] = {}
        for gi in sorted(self.gis.values(), key=lambda g: g.gi_id):
            busy = gi.holder is not None
            ci = CurrentCi(0, gi.ci_name, gi.ci_placement, busy)
            gis.append(CurrentGi(gi.gi_id, gi.profile.name, gi.placement, (ci,)))
            if not busy:
                idle[(gi.gi_id, 0)] = gi.idle_since
        reconfiguring = self.reconfiguring_until > now
        return GpuView(self.model, CurrentGpu(self.index, tuple(gis)), idle, {}, reconfiguring)


def build_machine(
    models: Sequence[GpuModel], layouts: Sequence[Sequence[tuple[str, Placement]]]
) -> list[ModelGpu]:
    """GPUs ``0..n-1`` with the given initial instances, idle since forever."""
    if len(models) != len(layouts):
        raise InvalidInputError(
            f"{len(models)} GPU models but {len(layouts)} initial layouts",
            hint="give one layout (possibly empty) per GPU",
        )
    gpus = []
    for index, (model, layout) in enumerate(zip(models, layouts, strict=True)):
        gpu = ModelGpu(index, model)
        for name, placement in layout:
            gpu.create(resolve_profile(model, name), placement)
        gpus.append(gpu)
    return gpus


def apply_reshape(gpu: ModelGpu, reshape: Reshape, now: float, seconds: float) -> list[ModelGi]:
    """Destroy and create as the plan says; new instances are ready ``seconds`` later.

    Returns the instances handed to the reshape's requests (usable from ``ready_at``).
    """
    destroyed = {op.gi_id for op in reshape.plan.ops if isinstance(op, DestroyGi)}
    for op in reshape.plan.ops:
        if isinstance(op, DestroyCi) and op.gi_id not in destroyed:
            raise InvalidStateError(
                f"GPU {gpu.index}: the plan changes the CIs of kept GI {op.gi_id}"
            )
        if isinstance(op, CreateCi) and op.gi.gi_id is not None:
            raise InvalidStateError(f"GPU {gpu.index}: the plan adds a CI to kept GI {op.gi.gi_id}")
    for gi_id in sorted(destroyed):
        gone = gpu.gis.pop(gi_id)
        if gone.holder is not None:
            raise InvalidStateError(f"GPU {gpu.index}: the plan destroys busy GI {gi_id}")
    for planned in reshape.plan.final:
        if planned.gi_id is None:
            gi = gpu.create(resolve_profile(gpu.model, planned.profile), planned.placement)
            gi.ready_at = now + seconds
    by_placement = {g.placement: g for g in gpu.gis.values()}
    started = []
    for grant in reshape.grants:
        gi = by_placement[grant.placement]
        if gi.holder is not None or gi.profile.name != grant.gi_profile:
            raise InvalidStateError(
                f"GPU {gpu.index}: cannot hand GI {gi.gi_id} to {grant.request_id}"
            )
        gi.holder = grant.request_id
        started.append(gi)
    gpu.reconfiguring_until = now + seconds
    return started
