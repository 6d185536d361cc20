"""Leases on the wire: a lease as CLI JSON, REST bodies and the client read it.

Why this module exists: ``migctl lease list -o json``, ``GET /v1/leases`` and the dashboard show
the same lease; a user sees the holder of their own leases only, so the owner fields are
nullable and ``redacted`` says when they were withheld. Redaction is the daemon's decision
(:func:`LeaseOut.of` with ``visible=False``); the shape is the same either way.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from migctl.leases.types import EndReason, Lease
from migctl.schemas.base import Wire, WireRequest

REDACTED_USER = "another user"


class LeaseOut(Wire):
    """A lease; ``user``, ``uid``, ``host``, ``job`` and ``pid`` are null when redacted."""

    lease_id: int
    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
    sm_count: int | None
    active: bool
    created_at: float
    ttl_seconds: float | None
    heartbeat_at: float
    expires_at: float | None
    ended_at: float | None
    end_reason: str | None
    ended_by: str | None
    mine: bool = Field(False, description="the caller holds it")
    redacted: bool = Field(False, description="the owner fields are withheld from the caller")
    user: str | None
    uid: int | None
    host: str | None
    job: str | None
    pid: int | None

    @classmethod
    def of(cls, lease: Lease, *, visible: bool = True, mine: bool = False) -> LeaseOut:
        """``lease`` as a caller sees it: owner fields only when ``visible``."""
        return cls(
            lease_id=lease.lease_id,
            uuid=lease.uuid,
            gpu_index=lease.gpu_index,
            gi_id=lease.gi_id,
            ci_id=lease.ci_id,
            profile=lease.profile,
            memory_mib=lease.memory_mib,
            sm_count=lease.sm_count,
            active=lease.active,
            created_at=lease.created_at,
            ttl_seconds=lease.ttl_seconds,
            heartbeat_at=lease.heartbeat_at,
            expires_at=lease.expires_at,
            ended_at=lease.ended_at,
            end_reason=None if lease.end_reason is None else lease.end_reason.value,
            ended_by=lease.ended_by if visible else None,
            mine=mine,
            redacted=not visible,
            user=lease.user if visible else None,
            uid=lease.uid if visible else None,
            host=lease.host if visible else None,
            job=lease.job if visible else None,
            pid=lease.pid if visible else None,
        )

    def value(self) -> Lease:
        """The lease; a redacted owner reads as ``another user`` with no job or PID."""
        return Lease(
            lease_id=self.lease_id,
            uuid=self.uuid,
            gpu_index=self.gpu_index,
            gi_id=self.gi_id,
            ci_id=self.ci_id,
            profile=self.profile,
            memory_mib=self.memory_mib,
            sm_count=self.sm_count,
            user=self.user or REDACTED_USER,
            uid=-1 if self.uid is None else self.uid,
            host=self.host or "",
            job=self.job,
            pid=self.pid,
            created_at=self.created_at,
            ttl_seconds=self.ttl_seconds,
            heartbeat_at=self.heartbeat_at,
            expires_at=self.expires_at,
            ended_at=self.ended_at,
            end_reason=None if self.end_reason is None else EndReason(self.end_reason),
            ended_by=self.ended_by,
        )


class LeaseListOut(Wire):
    leases: list[LeaseOut]


class LeaseRequest(WireRequest):
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
    create: bool = Field(False, description="create a GPU instance in free slices if none is free")

    @model_validator(mode="after")
    def _uuid_alone(self) -> LeaseRequest:
        if self.uuid is not None and any(
            v is not None for v in (self.profile, self.memory_mib, self.sms)
        ):
            raise ValueError("ask for a device uuid or for profile/memory_mib/sms, not both")
        return self


class RenewRequest(WireRequest):
    ttl_seconds: float | None = Field(None, gt=0, le=30 * 86400)
