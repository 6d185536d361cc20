"""Soft leases in the lease store: schema v2, grants under the lock, slots, MIG fences, reaping."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migctl.errors import InsufficientResourcesError, InUseError, InvalidStateError
from migctl.leases import (
    MIGRATIONS,
    DeviceCandidate,
    DeviceRequest,
    EndReason,
    LeaseOwner,
    LeaseStore,
)
from migctl.leases.soft import SoftLedger
from migctl.leases.types import LeaseKind, SoftGrant, SoftSlot, soft_device_id

HOST = "node1"
ALICE = LeaseOwner(user="alice", uid=1001, host=HOST)
BOB = LeaseOwner(user="bob", uid=1002, host=HOST)
MIG = DeviceCandidate("MIG-aaaa", 0, 1, 0, "3g.40gb", 40_192, 60)
OTHER_MIG = DeviceCandidate("MIG-bbbb", 0, 2, 0, "3g.40gb", 40_192, 60)


def store_at(path: Path, alive: set[int] | None = None) -> LeaseStore:
    live = alive if alive is not None else set()
    return LeaseStore(path, hostname=HOST, holder_alive=lambda pid, _ticks: pid in live)


def grant(parent: str = "MIG-aaaa", number: int = 1, percent: int = 25) -> SoftGrant:
    uuid = soft_device_id(parent, number)
    return SoftGrant(uuid, parent, 0, 1, 0, percent, 10_000, 16, pipe_dir="/tmp/p")


def test_a_v1_database_is_migrated_and_its_mig_leases_stay(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    LeaseStore(path, migrations=MIGRATIONS[:1]).close()  # a database of the previous migctl
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute(
        "INSERT INTO leases (device_uuid, gpu_index, gi_id, ci_id, profile, memory_mib, "
        "owner_user, owner_uid, host, created_at, heartbeat_at) "
        "VALUES ('MIG-aaaa', 0, 1, 0, '3g.40gb', 40192, 'alice', 1001, 'node1', 1, 1)"
    )
    conn.close()
    store = store_at(path)
    assert store.schema_version == 2
    (lease,) = store.list_leases()
    assert (lease.uuid, lease.kind, lease.share_percent, lease.parent_uuid) == (
        "MIG-aaaa",
        LeaseKind.MIG,
        None,
        None,
    )
    assert lease.cuda_device == "MIG-aaaa"


def test_a_soft_grant_is_recorded_with_its_share_and_parent(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    seen: list[SoftLedger] = []

    def choose(ledger: SoftLedger) -> SoftGrant:
        seen.append(ledger)
        return grant()

    lease = store.acquire_soft(ALICE, choose, ttl_seconds=60)
    assert seen == [SoftLedger()]
    assert lease.soft and lease.kind is LeaseKind.SOFT
    assert (lease.share_percent, lease.memory_limit_mib, lease.memory_mib) == (25, 10_000, 10_000)
    assert (lease.parent_uuid, lease.cuda_device, lease.pipe_dir) == ("MIG-aaaa",) * 2 + ("/tmp/p",)
    assert lease.profile == "soft 25%" and lease.expires_at is not None
    assert store.soft_ledger().on_parent("MIG-aaaa") == (lease,)


def test_the_database_refuses_two_grants_of_one_soft_device(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    store.acquire_soft(ALICE, lambda ledger: grant())
    with pytest.raises(InUseError, match="already has an active lease"):
        store.acquire_soft(BOB, lambda ledger: grant())


def test_the_chooser_sees_every_share_granted_and_its_refusal_changes_nothing(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path / "l.db")
    store.acquire_soft(ALICE, lambda ledger: grant(number=1, percent=60))

    def full(ledger: SoftLedger) -> SoftGrant:
        taken = sum(lease.share_percent or 0 for lease in ledger.on_parent("MIG-aaaa"))
        if taken + 60 > 100:
            raise InsufficientResourcesError(f"{taken}% taken")
        return grant(number=2, percent=60)

    with pytest.raises(InsufficientResourcesError, match="60% taken"):
        store.acquire_soft(BOB, full)
    assert len(store.list_leases()) == 1


def test_a_dead_holder_frees_its_soft_device(tmp_path: Path) -> None:
    alive = {4242}
    store = store_at(tmp_path / "l.db", alive)
    holder = LeaseOwner(user="alice", uid=1001, host=HOST, pid=4242)
    store.acquire_soft(holder, lambda ledger: grant())
    alive.clear()
    (ended,) = store.reap()
    assert ended.end_reason is EndReason.HOLDER_DIED and ended.soft
    assert store.soft_ledger().leases == ()
    store.acquire_soft(BOB, lambda ledger: grant())  # free again


def test_a_mig_device_shared_out_is_not_leased_whole(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    soft = store.acquire_soft(ALICE, lambda ledger: grant())
    with pytest.raises(InUseError, match=f"under lease {soft.lease_id}"):
        store.acquire(DeviceRequest(uuid="MIG-aaaa"), BOB, [MIG, OTHER_MIG])
    whole = store.acquire(DeviceRequest(), BOB, [MIG, OTHER_MIG])
    assert whole.uuid == "MIG-bbbb"


def test_a_mig_device_with_slots_is_not_leased_whole(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    with store.soft_editing() as editor:
        editor.add_slot(SoftSlot(soft_device_id("MIG-aaaa", 1), "MIG-aaaa", 0, 1, 0, 50, 20_000))
    with pytest.raises(InUseError, match="shared out through MPS by a layout"):
        store.acquire(DeviceRequest(uuid="MIG-aaaa"), BOB, [MIG])
    with pytest.raises(InsufficientResourcesError, match="shared out through MPS by a layout"):
        store.acquire(DeviceRequest(), BOB, [MIG])
    assert store.acquire(DeviceRequest(), BOB, [MIG, OTHER_MIG]).uuid == "MIG-bbbb"


def test_the_fence_of_a_mig_device_names_its_soft_lease(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    soft = store.acquire_soft(ALICE, lambda ledger: grant())
    with store.fenced("MIG-aaaa") as lease:
        assert lease is not None and lease.lease_id == soft.lease_id
    with store.fenced("MIG-bbbb") as lease:
        assert lease is None


def test_a_fenced_destroy_drops_the_devices_slots(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    with store.soft_editing() as editor:
        for parent in ("MIG-aaaa", "MIG-bbbb"):
            editor.add_slot(SoftSlot(soft_device_id(parent, 1), parent, 0, 1, 0, 50, 20_000))
    with store.fenced("MIG-aaaa", drop_soft_slots=True) as lease:
        assert lease is None
    assert [s.parent_uuid for s in store.soft_ledger().slots] == ["MIG-bbbb"]
    with pytest.raises(RuntimeError), store.fenced("MIG-bbbb", drop_soft_slots=True):
        raise RuntimeError("the destroy failed")
    assert [s.parent_uuid for s in store.soft_ledger().slots] == ["MIG-bbbb"]


def test_slots_editing_is_one_transaction(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    slot = SoftSlot(soft_device_id("MIG-aaaa", 1), "MIG-aaaa", 0, 1, 0, 50, 20_000)
    with pytest.raises(InvalidStateError), store.soft_editing() as editor:
        editor.add_slot(slot)
        editor.add_slot(slot)  # the same id twice: refused, and the first is undone too
    assert store.soft_ledger().slots == ()


def test_next_ids_skip_slots_and_leases_of_the_parent(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    with store.soft_editing() as editor:
        editor.add_slot(SoftSlot(soft_device_id("MIG-aaaa", 1), "MIG-aaaa", 0, 1, 0, 50, 20_000))
    store.acquire_soft(ALICE, lambda ledger: grant(number=2))
    ledger = store.soft_ledger()
    assert ledger.next_id("MIG-aaaa") == soft_device_id("MIG-aaaa", 3)
    assert ledger.next_id("MIG-bbbb") == soft_device_id("MIG-bbbb", 1)
    assert [s.uuid for s in ledger.free_slots()] == [soft_device_id("MIG-aaaa", 1)]
    assert [x.uuid for x in ledger.adhoc("MIG-aaaa")] == [soft_device_id("MIG-aaaa", 2)]


def test_a_soft_row_without_its_share_is_malformed(tmp_path: Path) -> None:
    store = store_at(tmp_path / "l.db")
    lease = store.acquire_soft(ALICE, lambda ledger: grant())
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("UPDATE leases SET parent_uuid = NULL WHERE lease_id = ?", (lease.lease_id,))
    with pytest.raises(InvalidStateError, match="soft lease without"):
        store.list_leases()
