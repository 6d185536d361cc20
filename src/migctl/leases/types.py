"""Value types of the lease store: what may be leased, what is asked for, who holds it.

Why this module exists: the store, the CLI verbs, ``migctl run`` and the REST service must pass
the same small frozen objects. The store never talks to hardware: the caller turns its current
MIG devices into :class:`DeviceCandidate` values (see :meth:`DeviceCandidate.from_mig_device`)
and passes them in. Anyone may import this module; it imports only ``migctl.model``/``errors``.
"""

from __future__ import annotations

import enum
import hashlib
import os
import pwd
import socket
from dataclasses import asdict, dataclass

from migctl.errors import UsageError
from migctl.model import MigDevice


class LeaseKind(enum.StrEnum):
    """What a lease grants: a whole MIG device, or a soft device (an MPS share of a parent)."""

    MIG = "mig"
    SOFT = "soft"


class EndReason(enum.StrEnum):
    """Why a lease ended; ended leases stay in the store as history."""

    RELEASED = "released"  # the owner released it
    EXPIRED = "expired"  # its TTL passed without a renewal
    HOLDER_DIED = "holder-died"  # the holding process is gone (or a zombie, or a recycled PID)
    REVOKED = "revoked"  # an admin released someone else's lease


@dataclass(frozen=True, slots=True)
class DeviceCandidate:
    """One MIG device the caller could lease now, as plain data.

    ``profile`` is the device's name without the ``MIG`` prefix (``1g.10gb`` for a CI that spans
    its GI, ``1c.3g.40gb`` for a smaller CI). ``busy`` is True when processes that hold no lease
    run on it; such devices are never handed out.
    """

    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
    sm_count: int | None = None
    busy: bool = False

    @classmethod
    def from_mig_device(cls, device: MigDevice, *, sm_count: int | None = None) -> DeviceCandidate:
        """A candidate from a backend's :class:`MigDevice`; busy when any process runs on it."""
        return cls(
            uuid=device.uuid,
            gpu_index=device.gpu_index,
            gi_id=device.gi_id,
            ci_id=device.ci_id,
            profile=device.ci_profile,
            memory_mib=device.memory_total_mib,
            sm_count=sm_count,
            busy=bool(device.processes),
        )

    def sort_key(self) -> tuple[int, int, int, int, int, str]:
        """Smallest first (memory, then SMs), ties by GPU index, GI id, CI id."""
        return (
            self.memory_mib,
            self.sm_count if self.sm_count is not None else 0,
            self.gpu_index,
            self.gi_id,
            self.ci_id,
            self.uuid,
        )

    def describe(self) -> str:
        """``MIG-abc (1g.10gb, GPU 0 GI 9 CI 0)``."""
        return f"{self.uuid} ({self.profile}, GPU {self.gpu_index} GI {self.gi_id} CI {self.ci_id})"


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """What the caller wants: an exact device, or a profile and/or minimum sizes.

    With ``uuid`` set nothing else may be set. Otherwise every given condition must hold and the
    smallest free device that meets them is chosen (ties by GPU index, then GI id). An empty
    request means "any free device" (still the smallest).
    """

    uuid: str | None = None
    profile: str | None = None
    min_memory_mib: int | None = None
    min_sm_count: int | None = None

    def __post_init__(self) -> None:
        others = (self.profile, self.min_memory_mib, self.min_sm_count)
        if self.uuid is not None and any(value is not None for value in others):
            raise UsageError(
                f"ask for device {self.uuid} or for a profile/size, not both",
                hint="drop the device uuid, or drop --profile/--memory/--sms",
            )
        for name, value in (
            ("min_memory_mib", self.min_memory_mib),
            ("min_sm_count", self.min_sm_count),
        ):
            if value is not None and value < 0:
                raise UsageError(f"{name} must be >= 0, got {value}", hint="pass a size >= 0")

    def matches(self, device: DeviceCandidate) -> bool:
        """Whether ``device`` meets every condition (busy and leased are not checked here)."""
        if self.uuid is not None:
            return device.uuid == self.uuid
        if self.profile is not None and device.profile != self.profile:
            return False
        if self.min_memory_mib is not None and device.memory_mib < self.min_memory_mib:
            return False
        if self.min_sm_count is None:
            return True
        return device.sm_count is not None and device.sm_count >= self.min_sm_count

    def describe(self) -> str:
        """``profile 1g.10gb, memory >= 10000 MiB`` or ``device MIG-...``."""
        if self.uuid is not None:
            return f"device {self.uuid}"
        parts = []
        if self.profile is not None:
            parts.append(f"profile {self.profile}")
        if self.min_memory_mib is not None:
            parts.append(f"memory >= {self.min_memory_mib} MiB")
        if self.min_sm_count is not None:
            parts.append(f"SMs >= {self.min_sm_count}")
        return ", ".join(parts) if parts else "any MIG device"


SOFT_PREFIX = "SOFT-"


def soft_device_id(parent_uuid: str, number: int) -> str:
    """``SOFT-<8 hex of the parent's UUID hash>-<n>``: the n-th soft device of a parent."""
    digest = hashlib.sha256(parent_uuid.encode()).hexdigest()[:8]
    return f"{SOFT_PREFIX}{digest}-{number}"


@dataclass(frozen=True, slots=True)
class SoftSlot:
    """A soft device a layout made on a parent: a share waiting for a lease, or held.

    ``gi_id``/``ci_id`` are the MIG parent's (-1 for a whole GPU); ``sm_count`` the SMs a
    client of the share should see (None when the parent's SM count is unknown).
    """

    uuid: str
    parent_uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    percent: int
    memory_limit_mib: int
    sm_count: int | None = None
    created_at: float = 0.0

    def describe(self) -> str:
        return f"{self.uuid} ({self.percent}% / {self.memory_limit_mib} MiB of {self.parent_uuid})"


@dataclass(frozen=True, slots=True)
class SoftGrant(SoftSlot):
    """What a soft lease records: the soft device, and where its parent's MPS daemon listens."""

    pipe_dir: str = ""

    @property
    def profile(self) -> str:
        """What lease tables show in their profile column: ``soft 25%``."""
        return f"soft {self.percent}%"


@dataclass(frozen=True, slots=True)
class LeaseOwner:
    """Who holds a lease: a user, optionally a job name and the holding process on ``host``.

    With ``pid`` set the lease ends when that process dies (checked on ``host`` only).
    """

    user: str
    uid: int
    host: str
    job: str | None = None
    pid: int | None = None

    @classmethod
    def current(cls, *, job: str | None = None, pid: int | None = None) -> LeaseOwner:
        """The calling user on this host (the effective uid's login name)."""
        uid = os.geteuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = f"uid{uid}"
        return cls(user=user, uid=uid, host=socket.gethostname(), job=job, pid=pid)

    def describe(self) -> str:
        """``alice (job train, pid 42 on node1)``."""
        extras = []
        if self.job:
            extras.append(f"job {self.job}")
        if self.pid is not None:
            extras.append(f"pid {self.pid} on {self.host}")
        return f"{self.user} ({', '.join(extras)})" if extras else self.user


@dataclass(frozen=True, slots=True)
class Lease:
    """One grant of one MIG device or soft device; times are Unix epoch seconds.

    A soft lease (``kind`` SOFT) names its soft device in ``uuid`` (``SOFT-...``), its parent
    (the GPU or MIG device CUDA sees) in ``parent_uuid``, the SM share and the pinned memory
    limit (also in ``memory_mib``), and the pipe directory of the parent's MPS control
    daemon: everything the holder's environment needs (``migctl.tenancy.environment``).
    ``gi_id``/``ci_id`` are the MIG parent's, or -1 for a whole GPU.
    """

    lease_id: int
    uuid: str
    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
    sm_count: int | None
    user: str
    uid: int
    host: str
    job: str | None
    pid: int | None
    created_at: float
    ttl_seconds: float | None
    heartbeat_at: float
    expires_at: float | None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    ended_by: str | None = None
    kind: LeaseKind = LeaseKind.MIG
    share_percent: int | None = None
    memory_limit_mib: int | None = None
    parent_uuid: str | None = None
    pipe_dir: str | None = None
    notes: tuple[str, ...] = ()  # warnings of the grant (not stored): oversubscribed, turns

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def soft(self) -> bool:
        """A soft device (an MPS share), not a whole MIG device."""
        return self.kind is LeaseKind.SOFT

    @property
    def cuda_device(self) -> str:
        """What ``CUDA_VISIBLE_DEVICES`` names: the MIG device, or a soft device's parent."""
        return self.parent_uuid if self.soft and self.parent_uuid else self.uuid

    @property
    def owner(self) -> LeaseOwner:
        return LeaseOwner(user=self.user, uid=self.uid, host=self.host, job=self.job, pid=self.pid)

    def describe_holder(self) -> str:
        """``alice (job train, pid 42 on node1) under lease 7``: for error messages."""
        return f"{self.owner.describe()} under lease {self.lease_id}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form (end reason as its string value)."""
        data = asdict(self)
        data["end_reason"] = None if self.end_reason is None else self.end_reason.value
        data["kind"] = self.kind.value
        data["isolation"] = "soft" if self.soft else "mig"  # soft: no fault/bandwidth isolation
        data["notes"] = list(self.notes)
        data["active"] = self.active
        return data
