"""Layouts on the wire: targets, desired layouts, plans, and what plan/apply/check report.

Why this module exists: a target (a layout file's text, ``split N``, a demand mix, sizes, or
explicit per-GPU layouts) is sent by ``RemoteNode`` to the daemon, which resolves it with its own
``LocalNode``: target resolution happens in one place. Plans and apply outcomes come back in the
form the apply journal also stores (``Plan.to_dict``: placements as ``"START:SIZE"``), so a journal
written by any migctl version reads back the same. Every count and string is bounded here, before
anything is expanded (the hardware check follows at resolution).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from migctl.errors import InvalidInputError, NotFoundError
from migctl.model import Placement
from migctl.planner import (
    CreateCi,
    CreateGi,
    CurrentCi,
    CurrentGi,
    CurrentGpu,
    DesiredCi,
    DesiredGi,
    DesiredLayout,
    DestroyCi,
    DestroyGi,
    GiRef,
    Op,
    Plan,
    PlannedCi,
    PlannedGi,
    SetMigMode,
)
from migctl.schemas.base import Wire, WireRequest

PLACEMENT_PATTERN = r"^\d{1,2}:\d{1,2}$"
MAX_LAYOUT_BYTES = 256 * 1024
MAX_GPUS = 1024
ProfileName = Annotated[str, Field(min_length=1, max_length=40, examples=["1g.10gb"])]
PlacementText = Annotated[str, Field(pattern=PLACEMENT_PATTERN, examples=["4:4"])]


def _placement(text: str | None) -> Placement | None:
    return None if text is None else Placement.parse(text)


def _text(placement: Placement | None) -> str | None:
    return None if placement is None else str(placement)


# Desired layouts ------------------------------------------------------------------------


class CiSpec(WireRequest):
    """One compute instance inside a GI: a CI profile (``1c.3g.40gb`` or ``1c``)."""

    profile: ProfileName
    placement: PlacementText | None = None


class GiSpec(WireRequest):
    """One GPU instance; ``cis`` omitted or null means one CI spanning the whole GI."""

    profile: ProfileName
    placement: PlacementText | None = Field(None, description="START:SIZE in memory slices")
    cis: list[CiSpec] | None = Field(None, max_length=8)


class GpuLayoutSpec(WireRequest):
    """The desired layout of one GPU."""

    mig_enabled: bool = True
    gis: list[GiSpec] = Field(default_factory=list, max_length=16)

    @classmethod
    def of(cls, layout: DesiredLayout) -> GpuLayoutSpec:
        return cls(
            mig_enabled=layout.mig_enabled,
            gis=[
                GiSpec(
                    profile=gi.profile,
                    placement=_text(gi.placement),
                    cis=None
                    if gi.cis is None
                    else [CiSpec(profile=c.profile, placement=_text(c.placement)) for c in gi.cis],
                )
                for gi in layout.gis
            ],
        )

    def value(self) -> DesiredLayout:
        return DesiredLayout(
            tuple(
                DesiredGi(
                    gi.profile,
                    _placement(gi.placement),
                    None
                    if gi.cis is None
                    else tuple(DesiredCi(c.profile, _placement(c.placement)) for c in gi.cis),
                )
                for gi in self.gis
            ),
            self.mig_enabled,
        )


def targets_out(targets: dict[int, DesiredLayout]) -> dict[str, GpuLayoutSpec]:
    return {str(gpu): GpuLayoutSpec.of(layout) for gpu, layout in sorted(targets.items())}


def targets_in(
    raw: dict[str, GpuLayoutSpec] | dict[int, GpuLayoutSpec],
) -> dict[int, DesiredLayout]:
    return {int(gpu): spec.value() for gpu, spec in raw.items()}


# Targets --------------------------------------------------------------------------------


class LayoutTarget(WireRequest):
    """A layout file's text (migctl's YAML or a mig-parted config) and which layout in it."""

    kind: Literal["layout"] = "layout"
    text: str = Field(min_length=1, max_length=MAX_LAYOUT_BYTES)
    config: str | None = Field(None, min_length=1, max_length=128)
    source: str = Field("<layout>", max_length=4096, description="file name, for messages")

    @classmethod
    def from_file(cls, path: Path | str, config: str | None = None) -> LayoutTarget:
        """Read ``path`` on the caller's side (a daemon never reads the caller's files)."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_LAYOUT_BYTES:
                raise InvalidInputError(
                    f"{path}: {size} bytes is more than a layout file may hold "
                    f"({MAX_LAYOUT_BYTES} bytes)",
                    context={"file": str(path)},
                )
            text = path.read_text()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"layout file {path} does not exist", context={"file": str(path)}
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"layout file {path} cannot be read: {exc}", context={"file": str(path)}
            ) from exc
        return cls(text=text or " ", config=config, source=str(path))


class SplitTarget(WireRequest):
    """N equal instances on each chosen GPU (the largest profile that allows N)."""

    kind: Literal["split"] = "split"
    n: int = Field(ge=1, le=64, description="checked against each GPU's limit at resolution")


class DemandTarget(WireRequest):
    """A demand mix packed onto the chosen GPUs, e.g. ``4x12GiB,1x35GiB,2x1g.10gb``."""

    kind: Literal["demand"] = "demand"
    demand: str = Field(min_length=1, max_length=4000)


class SizeTarget(WireRequest):
    """Instances sized by need: memory, SMs or a share of the GPU; ``count`` of them."""

    kind: Literal["size"] = "size"
    memory_mib: int | None = Field(None, gt=0, le=10_000_000)
    sms: int | None = Field(None, gt=0, le=100_000)
    share: float | None = Field(None, gt=0, le=1, description="a fraction of the GPU")
    count: int | None = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def _something(self) -> SizeTarget:
        if self.memory_mib is None and self.sms is None and self.share is None:
            raise ValueError("give memory_mib, sms or share")
        return self


class InstancesTarget(WireRequest):
    """Explicit desired layouts per GPU index."""

    kind: Literal["instances"] = "instances"
    layouts: dict[int, GpuLayoutSpec] = Field(max_length=MAX_GPUS)

    @classmethod
    def of(cls, targets: dict[int, DesiredLayout]) -> InstancesTarget:
        return cls(layouts={g: GpuLayoutSpec.of(t) for g, t in sorted(targets.items())})

    def value(self) -> dict[int, DesiredLayout]:
        return {gpu: spec.value() for gpu, spec in sorted(self.layouts.items())}


Target = Annotated[
    LayoutTarget | SplitTarget | DemandTarget | SizeTarget | InstancesTarget,
    Field(discriminator="kind"),
]
GpuList = Annotated[list[int], Field(max_length=MAX_GPUS)]


class PlanRequest(WireRequest):
    """``POST /v1/plan`` and ``/v1/check``: a target, the GPUs it is narrowed to, force."""

    target: Target
    gpus: GpuList | None = Field(None, description="default: every GPU the target names")
    force: bool = Field(False, description="also destroy busy (leased or running) instances")


class ApplyRequest(PlanRequest):
    """``POST /v1/apply``: as a plan request; ``dry_run`` only plans."""

    dry_run: bool = False


# Plans ----------------------------------------------------------------------------------


class GiRefOut(Wire):
    placement: PlacementText
    gi_id: int | None


class SetMigModeOut(Wire):
    op: Literal["set_mig_mode"]
    gpu: int
    enabled: bool


class DestroyCiOut(Wire):
    op: Literal["destroy_ci"]
    gpu: int
    gi_id: int
    ci_id: int
    profile: str
    placement: PlacementText
    busy: bool


class DestroyGiOut(Wire):
    op: Literal["destroy_gi"]
    gpu: int
    gi_id: int
    profile: str
    placement: PlacementText
    busy: bool


class CreateGiOut(Wire):
    op: Literal["create_gi"]
    gpu: int
    profile: str
    profile_id: int | None
    placement: PlacementText


class CreateCiOut(Wire):
    op: Literal["create_ci"]
    gpu: int
    gi: GiRefOut
    profile: str
    profile_id: int
    placement: PlacementText


OpOut = Annotated[
    SetMigModeOut | DestroyCiOut | DestroyGiOut | CreateGiOut | CreateCiOut,
    Field(discriminator="op"),
]


def op_value(out: OpOut) -> Op:
    gpu = out.gpu
    if isinstance(out, SetMigModeOut):
        return SetMigMode(gpu, out.enabled)
    if isinstance(out, DestroyCiOut):
        return DestroyCi(
            gpu, out.gi_id, out.ci_id, out.profile, Placement.parse(out.placement), out.busy
        )
    if isinstance(out, DestroyGiOut):
        return DestroyGi(gpu, out.gi_id, out.profile, Placement.parse(out.placement), out.busy)
    if isinstance(out, CreateGiOut):
        return CreateGi(gpu, out.profile, out.profile_id, Placement.parse(out.placement))
    gi = GiRef(Placement.parse(out.gi.placement), out.gi.gi_id)
    return CreateCi(gpu, gi, out.profile, out.profile_id, Placement.parse(out.placement))


class PlannedCiOut(Wire):
    profile: str
    placement: PlacementText
    ci_id: int | None


class PlannedGiOut(Wire):
    profile: str
    placement: PlacementText
    gi_id: int | None
    cis: list[PlannedCiOut]


class PlanOut(Wire):
    """One GPU's plan: numbered operations and the layout they reach."""

    gpu: int
    model: str
    mig_mode: bool | None
    ops: list[OpOut]
    kept_gi_ids: list[int]
    forced: list[str]
    summary: dict[str, int]
    final: list[PlannedGiOut]

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls.model_validate(plan.to_dict())

    def value(self) -> Plan:
        final = tuple(
            PlannedGi(
                gi.profile,
                Placement.parse(gi.placement),
                tuple(PlannedCi(c.profile, Placement.parse(c.placement), c.ci_id) for c in gi.cis),
                gi.gi_id,
            )
            for gi in self.final
        )
        return Plan(
            gpu_index=self.gpu,
            model_key=self.model,
            ops=tuple(op_value(op) for op in self.ops),
            final=final,
            kept_gi_ids=tuple(self.kept_gi_ids),
            forced=tuple(self.forced),
            mig_mode=self.mig_mode,
        )


class CurrentCiOut(Wire):
    ci_id: int
    profile: str
    placement: PlacementText
    busy: bool


class CurrentGiOut(Wire):
    gi_id: int
    profile: str
    placement: PlacementText
    busy: bool
    cis: list[CurrentCiOut]


class CurrentGpuOut(Wire):
    """A GPU as the planner saw it before a plan (busy instances marked)."""

    gpu: int
    mig_enabled: bool
    gis: list[CurrentGiOut]

    @classmethod
    def of(cls, current: CurrentGpu) -> CurrentGpuOut:
        return cls(
            gpu=current.gpu_index,
            mig_enabled=current.mig_enabled,
            gis=[
                CurrentGiOut(
                    gi_id=gi.gi_id,
                    profile=gi.profile,
                    placement=str(gi.placement),
                    busy=gi.busy,
                    cis=[
                        CurrentCiOut(
                            ci_id=c.ci_id,
                            profile=c.profile,
                            placement=str(c.placement),
                            busy=c.busy,
                        )
                        for c in gi.cis
                    ],
                )
                for gi in current.gis
            ],
        )

    def value(self) -> CurrentGpu:
        return CurrentGpu(
            self.gpu,
            tuple(
                CurrentGi(
                    gi.gi_id,
                    gi.profile,
                    Placement.parse(gi.placement),
                    tuple(
                        CurrentCi(c.ci_id, c.profile, Placement.parse(c.placement), c.busy)
                        for c in gi.cis
                    ),
                    gi.busy,
                )
                for gi in self.gis
            ),
            self.mig_enabled,
        )
