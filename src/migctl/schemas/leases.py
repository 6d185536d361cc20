"""Leases on the wire: a lease as CLI JSON, REST bodies and the client read it.

Why this module exists: ``migctl lease list -o json``, ``GET /v1/leases`` and the dashboard show
the same lease; a user sees the holder of their own leases only, so the owner fields are
nullable and ``redacted`` says when they were withheld. Redaction is the daemon's decision
(:func:`LeaseOut.of` with ``visible=False``); the shape is the same either way.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from migctl.leases.types import EndReason, Lease, LeaseKind
from migctl.schemas.base import Wire, WireRequest

REDACTED_USER = "another user"
_KINDS = frozenset(kind.value for kind in LeaseKind)


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
    kind: str = Field("mig", description="mig: a whole MIG device; soft: an MPS share of a parent")
    share_percent: int | None = Field(None, description="soft: the SM share, in percent")
    memory_limit_mib: int | None = Field(None, description="soft: the pinned memory limit")
    parent_uuid: str | None = Field(None, description="soft: the GPU or MIG device shared")
    pipe_dir: str | None = Field(None, description="soft: the parent's MPS pipe directory")
    isolation: str = Field(
        "mig",
        description="mig: hard isolation; soft: none for faults and memory bandwidth (a fatal "
        "fault in one client ends every client of the parent's MPS server)",
    )
    notes: list[str] = Field(default_factory=list, description="warnings of the grant")
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
            kind=lease.kind.value,
            share_percent=lease.share_percent,
            memory_limit_mib=lease.memory_limit_mib,
            parent_uuid=lease.parent_uuid,
            pipe_dir=lease.pipe_dir,
            isolation="soft" if lease.soft else "mig",
            notes=list(lease.notes),
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
            kind=LeaseKind(self.kind) if self.kind in _KINDS else LeaseKind.MIG,
            share_percent=self.share_percent,
            memory_limit_mib=self.memory_limit_mib,
            parent_uuid=self.parent_uuid,
            pipe_dir=self.pipe_dir,
            notes=tuple(self.notes),
        )


class LeaseListOut(Wire):
    leases: list[LeaseOut]


class LeaseRequest(WireRequest):
    """Lease one MIG device: an exact ``uuid``, or the smallest free one meeting the rest.

    With ``share`` it leases a soft device instead (an MPS share of a GPU with MIG off or of a
    MIG device): ``memory_mib`` is then its pinned memory limit (default: the share's fraction
    of the parent's memory), ``parent`` the device to share (default: the first that admits
    it), and ``oversubscribe`` / ``allow_other_user`` allow what the admission rules refuse.
    """

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
    share: int | None = Field(
        None,
        ge=1,
        le=100,
        description="a soft device: this SM share in whole percent (1-100), through MPS",
    )
    parent: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="soft: the GPU (index or GPU-<uuid>) or MIG device (MIG-<uuid>) to share",
    )
    oversubscribe: bool = Field(False, description="soft: SM shares may sum past 100%")
    allow_other_user: bool = Field(
        False,
        description="soft: share a parent another Unix user shares (MPS serves one user at a "
        "time: the users take turns)",
    )

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
        if self.share is None and (self.parent or self.oversubscribe or self.allow_other_user):
            raise ValueError("parent, oversubscribe and allow_other_user go with share")
        return self


class RenewRequest(WireRequest):
    ttl_seconds: float | None = Field(None, gt=0, le=30 * 86400)
