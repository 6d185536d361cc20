"""Request bodies of the REST API, as pydantic models (strict about unknown fields).

Why this module exists: the daemon must refuse bad input before it touches anything, with a
message that says which field is wrong. Every body here forbids unknown fields (a typo such as
``"ttl"`` for ``"ttl_seconds"`` is an error, not silently ignored) and bounds every list and
string, so a request can never make the daemon do unbounded work. The layout body is the
engine's target form (``{gpu: {mig_enabled, gis: [{profile, placement?, cis?}]}}``) or an
intent (``split``, ``demand``); layout files arrive with the layout package.

Only ``migctl.server`` (and clients that want the same schema) import this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PLACEMENT_PATTERN = r"^\d{1,2}:\d{1,2}$"
ProfileName = Field(min_length=1, max_length=40, examples=["1g.10gb"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CiSpec(Strict):
    """One compute instance inside a GI: a CI profile (``1c.3g.40gb`` or ``1c``)."""

    profile: str = ProfileName
    placement: str | None = Field(None, pattern=PLACEMENT_PATTERN, examples=["0:1"])


class GiSpec(Strict):
    """One GPU instance; ``cis`` omitted or null means one CI spanning the whole GI."""

    profile: str = ProfileName
    placement: str | None = Field(
        None, pattern=PLACEMENT_PATTERN, description="START:SIZE in memory slices", examples=["4:4"]
    )
    cis: list[CiSpec] | None = Field(None, max_length=8)


class GpuLayoutSpec(Strict):
    """The desired layout of one GPU."""

    mig_enabled: bool = True
    gis: list[GiSpec] = Field(default_factory=list, max_length=16)


class LayoutRequest(Strict):
    """What to plan or apply: explicit per-GPU targets, or one intent (split N, a demand mix)."""

    targets: dict[int, GpuLayoutSpec] | None = Field(
        None, max_length=1024, description="GPU index -> desired layout"
    )
    split: int | None = Field(None, ge=1, le=8, description="N equal instances on each GPU")
    demand: str | None = Field(
        None, min_length=1, max_length=4000, examples=["4x12GiB,1x35GiB,2x1g.10gb"]
    )
    layout: str | None = Field(
        None,
        min_length=1,
        max_length=256 * 1024,
        description="a layout file's text: migctl's YAML format or a mig-parted config",
    )
    config: str | None = Field(
        None, min_length=1, max_length=128, description="with layout: which named layout"
    )
    gpus: list[int] | None = Field(
        None,
        max_length=1024,
        description="with split/demand/layout: which GPUs (default: all MIG GPUs; a layout's "
        "selectors see every GPU, and only these GPUs are checked and planned)",
    )
    force: bool = Field(False, description="also destroy busy (leased or running) instances")

    @model_validator(mode="after")
    def _one_kind(self) -> LayoutRequest:
        given = [
            name
            for name in ("targets", "split", "demand", "layout")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of targets, split, demand or layout"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.config is not None and self.layout is None:
            raise ValueError("config names a layout inside `layout`")
        if self.targets is not None and self.gpus is not None:
            raise ValueError("gpus goes with split or demand; targets already name their GPUs")
        return self


class MigModeRequest(Strict):
    enabled: bool
    force: bool = Field(
        False,
        description="disabling: destroy the GPU's instances with the change, leased ones "
        "included (without it, disabling while GPU instances exist is refused: 409 in_use)",
    )


class LeaseRequest(Strict):
    """Lease one MIG device: an exact ``uuid``, or the smallest free one meeting the rest."""

    uuid: str | None = Field(None, min_length=4, max_length=80, examples=["MIG-..."])
    profile: str | None = Field(None, min_length=1, max_length=40, examples=["1g.10gb"])
    memory_mib: int | None = Field(None, ge=0, le=10_000_000)
    sms: int | None = Field(None, ge=0, le=100_000)
    wait_seconds: float = Field(0.0, ge=0, le=3600, description="wait this long for a device")
    ttl_seconds: float | None = Field(
        None, gt=0, le=30 * 86400, description="ends unless renewed within this time"
    )
    job: str | None = Field(None, min_length=1, max_length=128)
    pid: int | None = Field(
        None, gt=0, description="end the lease when this process (yours, on this host) exits"
    )
    priority: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="while waiting: larger is served first (default 0; users up to 10, admins"
        " up to 1000); used when the daemon repartitions on demand",
    )
    share: int | None = Field(
        None, ge=1, le=100, description="a soft device: this SM share (percent) through MPS"
    )
    parent: str | None = Field(
        None, min_length=1, max_length=80, description="soft: the GPU or MIG device to share"
    )
    oversubscribe: bool = Field(False, description="soft: SM shares may sum past 100%")
    allow_other_user: bool = Field(False, description="soft: share a parent another user shares")

    @model_validator(mode="after")
    def _uuid_alone(self) -> LeaseRequest:
        if self.uuid is not None and any(
            v is not None for v in (self.profile, self.memory_mib, self.sms)
        ):
            raise ValueError("ask for a device uuid or for profile/memory_mib/sms, not both")
        if self.share is not None and any(
            v is not None for v in (self.uuid, self.profile, self.sms)
        ):
            raise ValueError("a share (soft device) goes with memory_mib and parent only")
        return self


class RenewRequest(Strict):
    ttl_seconds: float | None = Field(None, gt=0, le=30 * 86400)


class TokenCreateRequest(Strict):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["user", "admin"]
    user: str | None = Field(
        None, min_length=1, max_length=64, description="lease owner (default: the token's name)"
    )
