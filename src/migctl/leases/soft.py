"""Soft leases and soft slots in the lease database: what is granted on which parent.

Why this module exists: a soft device (an MPS share of a GPU or a MIG device) is leased like a
MIG device, through the same store, so that no share is granted twice and a holder killed with
SIGKILL does not leak it. Two things differ: which share to grant depends on every share
already granted on the parent (memory must fit, SMs may not pass 100% unless allowed, one Unix
user per MPS server), so the caller's admission rules run *inside* the store's write
transaction on a :class:`SoftLedger`; and a layout may make soft devices ahead of any lease
(*slots*, table ``soft_slots``) that ``acquire --share`` then picks from. A MIG device that
carries soft leases or slots is never leased whole, and never destroyed while a soft lease
holds it (``LeaseStore.fenced``).

Only the lease store and :class:`SoftEditor`'s callers (the engine, through
``LeaseStore.soft_editing``) use this module; it imports ``migctl.errors`` and the lease types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from migctl.errors import InvalidStateError
from migctl.leases import rows
from migctl.leases.types import EndReason, Lease, SoftSlot, soft_device_id

DROPPED_BY = "migctl: its MIG device was destroyed"
SLOT_COLUMNS = (
    "device_uuid, parent_uuid, gpu_index, gi_id, ci_id, share_percent, memory_limit_mib, "
    "sm_count, created_at"
)


@dataclass(frozen=True)
class SoftLedger:
    """The soft state under the store's lock: active soft leases, slots, and MIG leases."""

    leases: tuple[Lease, ...] = ()  # active soft leases
    slots: tuple[SoftSlot, ...] = ()
    mig_leases: Mapping[str, Lease] = field(default_factory=dict)  # active, by MIG device

    def on_parent(self, parent_uuid: str) -> tuple[Lease, ...]:
        return tuple(lease for lease in self.leases if lease.parent_uuid == parent_uuid)

    def slots_of(self, parent_uuid: str) -> tuple[SoftSlot, ...]:
        return tuple(slot for slot in self.slots if slot.parent_uuid == parent_uuid)

    def holder_of(self, uuid: str) -> Lease | None:
        """The active soft lease on soft device ``uuid``."""
        return next((lease for lease in self.leases if lease.uuid == uuid), None)

    def free_slots(self) -> tuple[SoftSlot, ...]:
        held = {lease.uuid for lease in self.leases}
        return tuple(slot for slot in self.slots if slot.uuid not in held)

    def adhoc(self, parent_uuid: str) -> tuple[Lease, ...]:
        """Soft leases on ``parent_uuid`` that no slot made (leased without a layout)."""
        slotted = {slot.uuid for slot in self.slots}
        return tuple(lease for lease in self.on_parent(parent_uuid) if lease.uuid not in slotted)

    def parents(self) -> set[str]:
        """Every parent with a soft lease or a slot."""
        found = {lease.parent_uuid for lease in self.leases if lease.parent_uuid}
        return found | {slot.parent_uuid for slot in self.slots}

    def next_id(self, parent_uuid: str, taken: Iterable[str] = ()) -> str:
        """The lowest-numbered soft device id of ``parent_uuid`` not in use."""
        used = {lease.uuid for lease in self.leases} | {slot.uuid for slot in self.slots}
        used |= set(taken)
        number = 1
        while soft_device_id(parent_uuid, number) in used:
            number += 1
        return soft_device_id(parent_uuid, number)


def fetch_slots(conn: sqlite3.Connection) -> list[SoftSlot]:
    found = conn.execute(f"SELECT {SLOT_COLUMNS} FROM soft_slots ORDER BY gpu_index, device_uuid")
    return [SoftSlot(*row) for row in found]


def ledger(conn: sqlite3.Connection, active: Sequence[rows.StoredLease]) -> SoftLedger:
    """The ledger from the active leases (already reaped) and the slots."""
    leases = [stored.lease for stored in active]
    return SoftLedger(
        tuple(lease for lease in leases if lease.soft),
        tuple(fetch_slots(conn)),
        {lease.uuid: lease for lease in leases if not lease.soft},
    )


def insert_slot(conn: sqlite3.Connection, slot: SoftSlot) -> None:
    conn.execute(
        f"INSERT INTO soft_slots ({SLOT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            slot.uuid, slot.parent_uuid, slot.gpu_index, slot.gi_id, slot.ci_id, slot.percent,
            slot.memory_limit_mib, slot.sm_count, slot.created_at,
        ),
    )  # fmt: skip


def delete_slots(conn: sqlite3.Connection, uuids: Iterable[str]) -> int:
    removed = 0
    for uuid in uuids:
        removed += conn.execute("DELETE FROM soft_slots WHERE device_uuid = ?", (uuid,)).rowcount
    return removed


def mig_view(
    conn: sqlite3.Connection, active: Sequence[rows.StoredLease]
) -> tuple[dict[str, Lease], dict[str, str]]:
    """The leases that take MIG devices, and the MIG devices a layout shares out (reserved):
    a MIG device with soft leases counts as leased by them (it is shared through MPS)."""
    reserved = {
        slot.parent_uuid: "shared out through MPS by a layout (soft devices)"
        for slot in fetch_slots(conn)
    }
    taken: dict[str, Lease] = {}
    for stored in active:
        lease = stored.lease
        if lease.soft and lease.parent_uuid:
            taken.setdefault(lease.parent_uuid, lease)
        else:
            taken[lease.uuid] = lease
    return taken, reserved


def drop_parent(
    conn: sqlite3.Connection, parent_uuid: str, leases: Sequence[Lease], now: float
) -> None:
    """A parent is destroyed: its slots go, and its soft leases end as revoked."""
    delete_slots(conn, [s.uuid for s in fetch_slots(conn) if s.parent_uuid == parent_uuid])
    for lease in leases:
        rows.end(conn, lease.lease_id, now=now, reason=EndReason.REVOKED, ended_by=DROPPED_BY)


class SoftEditor:
    """Changes to soft slots inside one store transaction (``LeaseStore.soft_editing``)."""

    def __init__(self, conn: sqlite3.Connection, ledger: SoftLedger, now: float) -> None:
        self._conn = conn
        self.ledger = ledger
        self.now = now

    def add_slot(self, slot: SoftSlot) -> SoftSlot:
        """Record a soft device a layout made (its id must be free)."""
        if slot.uuid in {s.uuid for s in self.ledger.slots}:
            raise InvalidStateError(f"soft device {slot.uuid} exists already")
        made = SoftSlot(
            slot.uuid, slot.parent_uuid, slot.gpu_index, slot.gi_id, slot.ci_id, slot.percent,
            slot.memory_limit_mib, slot.sm_count, self.now,
        )  # fmt: skip
        insert_slot(self._conn, made)
        self.ledger = SoftLedger(
            self.ledger.leases, (*self.ledger.slots, made), self.ledger.mig_leases
        )
        return made

    def remove_slot(self, uuid: str) -> None:
        delete_slots(self._conn, [uuid])
        self.ledger = SoftLedger(
            self.ledger.leases,
            tuple(s for s in self.ledger.slots if s.uuid != uuid),
            self.ledger.mig_leases,
        )

    def revoke(self, lease: Lease, *, by: str) -> None:
        """End a soft lease as revoked (a forced reshape removed its share)."""
        rows.end(self._conn, lease.lease_id, now=self.now, reason=EndReason.REVOKED, ended_by=by)
        self.ledger = SoftLedger(
            tuple(x for x in self.ledger.leases if x.lease_id != lease.lease_id),
            self.ledger.slots,
            self.ledger.mig_leases,
        )
