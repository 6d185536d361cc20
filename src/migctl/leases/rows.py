"""SQL for lease rows: the column list, row -> :class:`Lease`, insert, end, and reaping.

Why this module exists: the store's transactions read like the rules they implement, while the
column bookkeeping lives here once. Every function takes a connection that is already inside a
``BEGIN IMMEDIATE`` transaction (reads may also run outside one).

Only the lease store imports this module; it imports ``migctl.errors`` and the lease types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migctl.errors import InUseError
from migctl.leases.types import (
    DeviceCandidate,
    EndReason,
    Lease,
    LeaseKind,
    LeaseOwner,
    SoftGrant,
)

COLUMNS = (
    "lease_id, device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, sm_count, "
    "owner_user, owner_uid, host, job_name, holder_pid, created_at, ttl_seconds, "
    "heartbeat_at, expires_at, ended_at, end_reason, ended_by, holder_start_ticks, "
    "kind, share_percent, memory_limit_mib, parent_uuid, pipe_dir"
)
SELECT = f"SELECT {COLUMNS} FROM leases"

HolderAlive = Callable[[int, int | None], bool]

# What each column of COLUMNS must hold. SQLite stores any value in any column (its types are
# only affinities), so a row written by another tool or edited by hand is checked on the way
# out: the table definition is the schema, this is its enforcement.
Kinds = tuple[type, ...]
_INT: Kinds = (int,)
_NUMBER: Kinds = (int, float)
_TEXT: Kinds = (str,)
_KINDS: tuple[tuple[Kinds, bool], ...] = (  # (types, may be NULL), COLUMNS order
    (_INT, False), (_TEXT, False), (_INT, False), (_INT, False), (_INT, False),
    (_TEXT, False), (_INT, False), (_INT, True), (_TEXT, False), (_INT, False),
    (_TEXT, False), (_TEXT, True), (_INT, True), (_NUMBER, False), (_NUMBER, True),
    (_NUMBER, False), (_NUMBER, True), (_NUMBER, True), (_TEXT, True), (_TEXT, True),
    (_INT, True), (_TEXT, False), (_INT, True), (_INT, True), (_TEXT, True),
    (_TEXT, True),
)  # fmt: skip
_KIND_WORDS: dict[Kinds, str] = {_INT: "an integer", _NUMBER: "a number", _TEXT: "text"}
_END_REASONS = frozenset(reason.value for reason in EndReason)
_KIND_VALUES = frozenset(kind.value for kind in LeaseKind)


class MalformedLeaseRow(Exception):
    """A lease row holds a value its column cannot (see ``_KINDS``)."""

    def __init__(self, lease_id: object, problem: str) -> None:
        super().__init__(f"lease {lease_id}: {problem}")
        self.lease_id = lease_id


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A lease row plus what only the store needs (the holder's recorded start time)."""

    lease: Lease
    holder_start_ticks: int | None


def _row_problem(row: tuple[Any, ...]) -> str | None:
    names = [name.strip() for name in COLUMNS.split(",")]
    for name, value, (kinds, nullable) in zip(names, row, _KINDS, strict=True):
        if value is None and nullable:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f"column {name} holds {value!r}, not {_KIND_WORDS[kinds]}"
    if row[18] is not None and row[18] not in _END_REASONS:
        return f"column end_reason holds {row[18]!r}, not one of {', '.join(sorted(_END_REASONS))}"
    if row[21] not in _KIND_VALUES:
        return f"column kind holds {row[21]!r}, not one of {', '.join(sorted(_KIND_VALUES))}"
    if row[21] == LeaseKind.SOFT and None in (row[22], row[23], row[24]):
        return "a soft lease without its share, memory limit or parent"
    return None


def from_row(row: tuple[Any, ...]) -> StoredLease:
    """Map one ``SELECT`` row (column order as :data:`COLUMNS`); MalformedLeaseRow when a
    column holds what it cannot."""
    problem = _row_problem(row)
    if problem is not None:
        raise MalformedLeaseRow(row[0], problem)
    reason = None if row[18] is None else EndReason(row[18])
    lease = Lease(
        lease_id=row[0], uuid=row[1], gpu_index=row[2], gi_id=row[3], ci_id=row[4],
        profile=row[5], memory_mib=row[6], sm_count=row[7], user=row[8], uid=row[9],
        host=row[10], job=row[11], pid=row[12], created_at=row[13], ttl_seconds=row[14],
        heartbeat_at=row[15], expires_at=row[16], ended_at=row[17], end_reason=reason,
        ended_by=row[19], kind=LeaseKind(row[21]), share_percent=row[22],
        memory_limit_mib=row[23], parent_uuid=row[24], pipe_dir=row[25],
    )  # fmt: skip
    return StoredLease(lease=lease, holder_start_ticks=row[20])


def fetch(
    conn: sqlite3.Connection, where: str = "", params: tuple[object, ...] = ()
) -> list[StoredLease]:
    """Rows matching ``where`` (an SQL tail such as ``WHERE ended_at IS NULL``)."""
    return [from_row(tuple(row)) for row in conn.execute(f"{SELECT} {where}", params)]


def fetch_active(conn: sqlite3.Connection) -> list[StoredLease]:
    return fetch(conn, "WHERE ended_at IS NULL ORDER BY lease_id")


def fetch_one(conn: sqlite3.Connection, lease_id: int) -> StoredLease | None:
    found = fetch(conn, "WHERE lease_id = ?", (lease_id,))
    return found[0] if found else None


def insert(
    conn: sqlite3.Connection,
    device: DeviceCandidate,
    owner: LeaseOwner,
    *,
    now: float,
    ttl_seconds: float | None,
    holder_start_ticks: int | None,
) -> int:
    """Insert an active lease; the UNIQUE partial index refuses a second one on the device."""
    expires_at = None if ttl_seconds is None else now + ttl_seconds
    try:
        cursor = conn.execute(
            "INSERT INTO leases (device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, "
            "sm_count, owner_user, owner_uid, host, job_name, holder_pid, holder_start_ticks, "
            "created_at, ttl_seconds, heartbeat_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device.uuid, device.gpu_index, device.gi_id, device.ci_id, device.profile,
                device.memory_mib, device.sm_count, owner.user, owner.uid, owner.host, owner.job,
                owner.pid, holder_start_ticks, now, ttl_seconds, now, expires_at,
            ),
        )  # fmt: skip
    except sqlite3.IntegrityError as exc:
        raise InUseError(
            f"{device.describe()} already has an active lease (refused by the database)",
            hint="choose another device, or wait for its lease to end",
            context={"uuid": device.uuid},
        ) from exc
    lease_id = cursor.lastrowid
    assert lease_id is not None  # an INSERT into a rowid table always sets it
    return lease_id


def insert_soft(
    conn: sqlite3.Connection,
    grant: SoftGrant,
    owner: LeaseOwner,
    *,
    now: float,
    ttl_seconds: float | None,
    holder_start_ticks: int | None,
) -> int:
    """Insert an active soft lease; the UNIQUE partial index refuses a second one on the
    soft device (two grants of one share)."""
    expires_at = None if ttl_seconds is None else now + ttl_seconds
    try:
        cursor = conn.execute(
            "INSERT INTO leases (device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, "
            "sm_count, owner_user, owner_uid, host, job_name, holder_pid, holder_start_ticks, "
            "created_at, ttl_seconds, heartbeat_at, expires_at, kind, share_percent, "
            "memory_limit_mib, parent_uuid, pipe_dir) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                grant.uuid, grant.gpu_index, grant.gi_id, grant.ci_id, grant.profile,
                grant.memory_limit_mib, grant.sm_count, owner.user, owner.uid, owner.host,
                owner.job, owner.pid, holder_start_ticks, now, ttl_seconds, now, expires_at,
                LeaseKind.SOFT.value, grant.percent, grant.memory_limit_mib, grant.parent_uuid,
                grant.pipe_dir,
            ),
        )  # fmt: skip
    except sqlite3.IntegrityError as exc:
        raise InUseError(
            f"soft device {grant.uuid} already has an active lease (refused by the database)",
            hint="ask again: another share will be chosen",
            context={"uuid": grant.uuid},
        ) from exc
    lease_id = cursor.lastrowid
    assert lease_id is not None
    return lease_id


def end(
    conn: sqlite3.Connection, lease_id: int, *, now: float, reason: EndReason, ended_by: str
) -> None:
    """End an active lease (no-op on an ended one)."""
    conn.execute(
        "UPDATE leases SET ended_at = ?, end_reason = ?, ended_by = ? "
        "WHERE lease_id = ? AND ended_at IS NULL",
        (now, reason.value, ended_by, lease_id),
    )


def stale_reason(
    stored: StoredLease, *, now: float, hostname: str, holder_alive: HolderAlive
) -> EndReason | None:
    """Why an active lease should end now (TTL passed, holder gone), or None if it stands."""
    lease = stored.lease
    if lease.expires_at is not None and lease.expires_at <= now:
        return EndReason.EXPIRED
    if lease.pid is None or lease.host != hostname:
        return None  # no holder process, or one this host cannot see: only the TTL applies
    if holder_alive(lease.pid, stored.holder_start_ticks):
        return None
    return EndReason.HOLDER_DIED
