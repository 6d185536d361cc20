"""LeaseStore in one process: acquire, release, renew, listing, reaping, create hook, waiting."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
from migctl.leases import (
    Backoff,
    DeviceCandidate,
    DeviceRequest,
    EndReason,
    LeaseOwner,
    LeaseStore,
)

HOST = "node1"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def device(
    uuid: str, gpu: int, gi: int, profile: str, memory_mib: int, *, sms: int | None = None
) -> DeviceCandidate:
    return DeviceCandidate(uuid, gpu, gi, 0, profile, memory_mib, sms)


# Two GPUs: small devices on GPU 1 listed first to check the ordering is not list order.
DEVICES = [
    device("MIG-g1-1g", 1, 9, "1g.10gb", 9_984, sms=16),
    device("MIG-g0-3g", 0, 2, "3g.40gb", 40_192, sms=60),
    device("MIG-g0-1g-b", 0, 13, "1g.10gb", 9_984, sms=16),
    device("MIG-g0-1g-a", 0, 11, "1g.10gb", 9_984, sms=16),
    device("MIG-g0-2g", 0, 5, "2g.20gb", 19_968, sms=32),
]
ALICE = LeaseOwner(user="alice", uid=1001, host=HOST, job="train")
BOB = LeaseOwner(user="bob", uid=1002, host=HOST)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> LeaseStore:
    return LeaseStore(tmp_path / "leases.db", clock=clock, hostname=HOST)


def test_acquire_by_profile_takes_lowest_gpu_then_gi(store: LeaseStore) -> None:
    first = store.acquire(DeviceRequest(profile="1g.10gb"), ALICE, DEVICES)
    second = store.acquire(DeviceRequest(profile="1g.10gb"), ALICE, DEVICES)
    third = store.acquire(DeviceRequest(profile="1g.10gb"), BOB, DEVICES)
    assert [first.uuid, second.uuid, third.uuid] == ["MIG-g0-1g-a", "MIG-g0-1g-b", "MIG-g1-1g"]
    assert (third.user, third.uid, third.host) == ("bob", 1002, HOST)


def test_acquire_by_need_takes_smallest_that_fits(store: LeaseStore) -> None:
    lease = store.acquire(DeviceRequest(min_memory_mib=15_000), ALICE, DEVICES)
    assert lease.uuid == "MIG-g0-2g"
    by_sms = store.acquire(DeviceRequest(min_sm_count=33), ALICE, DEVICES)
    assert by_sms.uuid == "MIG-g0-3g"


def test_acquire_by_need_skips_devices_with_unknown_sm_count(store: LeaseStore) -> None:
    unknown = [device("MIG-x", 0, 1, "7g.80gb", 80_000, sms=None)]
    with pytest.raises(InsufficientResourcesError, match=r"SMs >= 1"):
        store.acquire(DeviceRequest(min_sm_count=1), ALICE, unknown)


def test_lease_records_device_owner_and_times(store: LeaseStore, clock: FakeClock) -> None:
    owner = LeaseOwner(user="alice", uid=1001, host=HOST, job="train", pid=os.getpid())
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-3g"), owner, DEVICES, ttl_seconds=60)
    assert (lease.gpu_index, lease.gi_id, lease.ci_id) == (0, 2, 0)
    assert (lease.profile, lease.memory_mib, lease.sm_count) == ("3g.40gb", 40_192, 60)
    assert (lease.job, lease.pid) == ("train", os.getpid())
    assert lease.created_at == lease.heartbeat_at == clock.now
    assert lease.expires_at == clock.now + 60
    assert lease.active and lease.end_reason is None
    assert store.get("MIG-g0-3g") == lease
    assert store.get_lease(lease.lease_id) == lease


def test_exact_uuid_unknown_is_not_found(store: LeaseStore) -> None:
    with pytest.raises(NotFoundError, match="MIG-nope") as info:
        store.acquire(DeviceRequest(uuid="MIG-nope"), ALICE, DEVICES)
    assert info.value.hint


def test_exact_uuid_leased_names_the_holder(store: LeaseStore) -> None:
    held = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES)
    with pytest.raises(InUseError) as info:
        store.acquire(DeviceRequest(uuid="MIG-g0-2g"), BOB, DEVICES)
    assert "alice" in info.value.message and "train" in info.value.message
    assert info.value.context["lease_id"] == held.lease_id


def test_busy_devices_are_never_handed_out(store: LeaseStore) -> None:
    devices = [
        DeviceCandidate("MIG-busy", 0, 1, 0, "1g.10gb", 9_984, busy=True),
        device("MIG-free", 0, 2, "1g.10gb", 9_984),
    ]
    assert store.acquire(DeviceRequest(profile="1g.10gb"), ALICE, devices).uuid == "MIG-free"
    with pytest.raises(InUseError, match="busy"):
        store.acquire(DeviceRequest(uuid="MIG-busy"), ALICE, devices)
    with pytest.raises(InsufficientResourcesError, match=r"MIG-busy.*no lease"):
        store.acquire(DeviceRequest(profile="1g.10gb"), BOB, devices)


def test_all_taken_says_what_exists_and_who_holds_it(store: LeaseStore) -> None:
    for _ in range(3):
        store.acquire(DeviceRequest(profile="1g.10gb"), ALICE, DEVICES)
    with pytest.raises(InsufficientResourcesError) as info:
        store.acquire(DeviceRequest(profile="1g.10gb"), BOB, DEVICES)
    message = info.value.message
    assert "all 3" in message and message.count("alice") == 3
    assert "Free but not matching" in message and "3g.40gb" in message
    assert info.value.context["holders"] == ["alice"]
    assert info.value.hint and "wait" in info.value.hint


def test_nothing_matches_lists_the_profiles_present(store: LeaseStore) -> None:
    with pytest.raises(InsufficientResourcesError) as info:
        store.acquire(DeviceRequest(profile="4g.40gb"), ALICE, DEVICES)
    assert "3x 1g.10gb" in info.value.message and "1x 3g.40gb" in info.value.message
    with pytest.raises(InsufficientResourcesError, match="no MIG devices"):
        store.acquire(DeviceRequest(), ALICE, [])


def test_duplicate_uuids_in_inventory_are_refused(store: LeaseStore) -> None:
    with pytest.raises(InvalidInputError, match="MIG-g0-2g"):
        store.acquire(DeviceRequest(), ALICE, [DEVICES[4], DEVICES[4]])


def test_release_by_owner_keeps_history(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.acquire(DeviceRequest(profile="2g.20gb"), ALICE, DEVICES)
    clock.now += 5
    ended = store.release(lease.lease_id, user="alice")
    assert (ended.end_reason, ended.ended_at, ended.ended_by) == (
        EndReason.RELEASED, clock.now, "alice"
    )  # fmt: skip
    assert store.get("MIG-g0-2g") is None
    assert store.list_leases() == []
    assert store.list_leases(active_only=False) == [ended]
    again = store.acquire(DeviceRequest(profile="2g.20gb"), BOB, DEVICES)
    assert again.uuid == "MIG-g0-2g" and again.lease_id != lease.lease_id


def test_release_by_uuid_and_by_digit_string(store: LeaseStore) -> None:
    first = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES)
    second = store.acquire(DeviceRequest(uuid="MIG-g0-3g"), ALICE, DEVICES)
    assert store.release("MIG-g0-2g", user="alice").lease_id == first.lease_id
    assert store.release(str(second.lease_id), user="alice").lease_id == second.lease_id


def test_release_of_another_users_lease(store: LeaseStore) -> None:
    lease = store.acquire(DeviceRequest(profile="2g.20gb"), ALICE, DEVICES)
    with pytest.raises(PermissionDeniedError, match="alice") as info:
        store.release(lease.lease_id, user="bob")
    assert info.value.hint and "admin" in info.value.hint
    assert store.get("MIG-g0-2g") == lease
    revoked = store.release(lease.lease_id, user="root", admin=True)
    assert (revoked.end_reason, revoked.ended_by) == (EndReason.REVOKED, "root")


def test_release_errors(store: LeaseStore) -> None:
    with pytest.raises(NotFoundError):
        store.release(42, user="alice")
    with pytest.raises(NotFoundError):
        store.release("MIG-g0-2g", user="alice")
    lease = store.acquire(DeviceRequest(profile="2g.20gb"), ALICE, DEVICES)
    store.release(lease.lease_id, user="alice")
    with pytest.raises(InvalidStateError, match="released"):
        store.release(lease.lease_id, user="alice")
    with pytest.raises(InvalidStateError, match="already ended"):
        store.release("MIG-g0-2g", user="alice")


def test_ttl_expiry_frees_the_device(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES, ttl_seconds=30)
    clock.now += 29.9
    with pytest.raises(InUseError):
        store.acquire(DeviceRequest(uuid="MIG-g0-2g"), BOB, DEVICES)
    clock.now += 0.1
    taken = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), BOB, DEVICES)
    assert taken.user == "bob"
    old = store.get_lease(lease.lease_id)
    assert (old.end_reason, old.ended_at, old.ended_by) == (EndReason.EXPIRED, clock.now, "migctl")


def test_renew_pushes_expiry(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES, ttl_seconds=30)
    clock.now += 20
    renewed = store.renew(lease.lease_id)
    assert (renewed.heartbeat_at, renewed.expires_at) == (clock.now, clock.now + 30)
    clock.now += 20  # 40 s after acquire: alive only thanks to the renewal
    assert store.reap() == []
    longer = store.renew(lease.lease_id, ttl_seconds=100, user="alice")
    assert (longer.ttl_seconds, longer.expires_at) == (100, clock.now + 100)


def test_renew_refuses_expired_ended_and_foreign(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES, ttl_seconds=10)
    with pytest.raises(PermissionDeniedError):
        store.renew(lease.lease_id, user="bob")
    assert store.renew(lease.lease_id, user="root", admin=True).active
    clock.now += 11
    with pytest.raises(InvalidStateError, match="expired"):
        store.renew(lease.lease_id)
    with pytest.raises(NotFoundError):
        store.renew(999)


def test_renew_without_ttl_only_records_the_heartbeat(store: LeaseStore, clock: FakeClock) -> None:
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES)
    clock.now += 3600
    renewed = store.renew(lease.lease_id)
    assert (renewed.heartbeat_at, renewed.expires_at, renewed.ttl_seconds) == (
        clock.now,
        None,
        None,
    )


@pytest.mark.parametrize("ttl", [0, -1.5])
def test_bad_ttl_and_wait_are_usage_errors(store: LeaseStore, ttl: float) -> None:
    with pytest.raises(UsageError):
        store.acquire(DeviceRequest(), ALICE, DEVICES, ttl_seconds=ttl)
    with pytest.raises(UsageError):
        store.acquire(DeviceRequest(), ALICE, DEVICES, wait_seconds=-1)
    lease = store.acquire(DeviceRequest(), ALICE, DEVICES)
    with pytest.raises(UsageError):
        store.renew(lease.lease_id, ttl_seconds=ttl)


def test_list_filters_by_owner_and_sorts_by_gpu_then_gi(store: LeaseStore) -> None:
    for uuid, owner in [("MIG-g1-1g", ALICE), ("MIG-g0-3g", BOB), ("MIG-g0-1g-a", ALICE)]:
        store.acquire(DeviceRequest(uuid=uuid), owner, DEVICES)
    assert [x.uuid for x in store.list_leases()] == ["MIG-g0-3g", "MIG-g0-1g-a", "MIG-g1-1g"]
    assert [x.uuid for x in store.list_leases(user="alice")] == ["MIG-g0-1g-a", "MIG-g1-1g"]
    store.release("MIG-g1-1g", user="alice")
    history = store.list_leases(active_only=False, user="alice")
    assert [(x.uuid, x.active) for x in history] == [("MIG-g1-1g", False), ("MIG-g0-1g-a", True)]
    store.acquire(DeviceRequest(uuid="MIG-g1-1g"), BOB, DEVICES)
    device_history = store.list_leases(active_only=False, uuid="MIG-g1-1g")
    assert [(x.user, x.active) for x in device_history] == [("alice", False), ("bob", True)]
    assert [x.user for x in store.list_leases(uuid="MIG-g1-1g", user="alice")] == []


def test_holder_died_is_reaped_before_choosing(tmp_path: Path, clock: FakeClock) -> None:
    alive = {4242: True}
    store = LeaseStore(tmp_path / "l.db", clock=clock, hostname=HOST,
                       holder_alive=lambda pid, _ticks: alive.get(pid, False))  # fmt: skip
    holder = LeaseOwner(user="alice", uid=1001, host=HOST, pid=4242)
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), holder, DEVICES)
    assert store.reap() == []
    alive[4242] = False
    assert store.acquire(DeviceRequest(uuid="MIG-g0-2g"), BOB, DEVICES).user == "bob"
    assert store.get_lease(lease.lease_id).end_reason is EndReason.HOLDER_DIED


def test_holder_on_another_host_is_left_to_its_ttl(tmp_path: Path, clock: FakeClock) -> None:
    store = LeaseStore(tmp_path / "l.db", clock=clock, hostname=HOST,
                       holder_alive=lambda _pid, _ticks: False)  # fmt: skip
    remote = LeaseOwner(user="alice", uid=1001, host="node2", pid=4242)
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), remote, DEVICES, ttl_seconds=60)
    assert store.reap() == []
    clock.now += 60
    assert [x.lease_id for x in store.reap()] == [lease.lease_id]


def test_recycled_pid_counts_as_dead(store: LeaseStore) -> None:
    me = LeaseOwner(user="alice", uid=1001, host=HOST, pid=os.getpid())
    lease = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), me, DEVICES)
    assert store.reap() == []  # our own process: alive, same start time
    with sqlite3.connect(store.path) as conn:  # pretend the PID was reused by a newer process
        conn.execute("UPDATE leases SET holder_start_ticks = holder_start_ticks - 1")
    [ended] = store.reap()
    assert (ended.lease_id, ended.end_reason) == (lease.lease_id, EndReason.HOLDER_DIED)


def test_acquire_for_a_dead_pid_is_refused(store: LeaseStore) -> None:
    ghost = LeaseOwner(user="alice", uid=1001, host=HOST, pid=2**22 + 12345)
    with pytest.raises(InvalidInputError, match="not running"):
        store.acquire(DeviceRequest(), ghost, DEVICES)
    assert store.list_leases(active_only=False) == []


def test_create_hook_runs_outside_the_transaction(store: LeaseStore, tmp_path: Path) -> None:
    other = LeaseStore(store.path, busy_timeout_s=0.2, hostname=HOST)
    created = device("MIG-new", 1, 3, "4g.40gb", 40_192, sms=64)
    calls: list[DeviceRequest] = []

    def create(request: DeviceRequest) -> DeviceCandidate:
        calls.append(request)
        # Would fail with "locked" if acquire still held the write lock while creating.
        other.acquire(DeviceRequest(uuid="MIG-g0-3g"), BOB, DEVICES)
        return created

    request = DeviceRequest(profile="4g.40gb")
    lease = store.acquire(request, ALICE, DEVICES, create_device=create)
    assert (lease.uuid, lease.gpu_index, calls) == ("MIG-new", 1, [request])
    assert store.get("MIG-g0-3g") is not None


def test_create_hook_is_not_called_when_something_fits(store: LeaseStore) -> None:
    def create(_request: DeviceRequest) -> DeviceCandidate:
        raise AssertionError("create must not be called")

    assert store.acquire(DeviceRequest(profile="1g.10gb"), ALICE, DEVICES, create_device=create)


def test_create_hook_returning_none_leaves_the_original_error(store: LeaseStore) -> None:
    calls: list[DeviceRequest] = []

    def create(request: DeviceRequest) -> None:
        calls.append(request)

    fast = Backoff(initial_s=0.01, max_s=0.01)
    store_fast = LeaseStore(store.path, hostname=HOST, backoff=fast)
    with pytest.raises(InsufficientResourcesError, match=r"7g\.80gb.*waiting"):
        store_fast.acquire(DeviceRequest(profile="7g.80gb"), ALICE, DEVICES,
                           create_device=create, wait_seconds=0.1)  # fmt: skip
    assert len(calls) == 1  # at most once per acquire, even while waiting


def test_waiting_acquire_gets_a_released_device(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db", hostname=HOST, backoff=Backoff(initial_s=0.01))
    held = store.acquire(DeviceRequest(uuid="MIG-g0-3g"), ALICE, DEVICES)
    timer = threading.Timer(0.3, lambda: store.release(held.lease_id, user="alice"))
    timer.start()
    try:
        lease = store.acquire(DeviceRequest(profile="3g.40gb"), BOB, DEVICES, wait_seconds=5)
    finally:
        timer.join()
    assert (lease.uuid, lease.user) == ("MIG-g0-3g", "bob")
    assert store.get_lease(held.lease_id).end_reason is EndReason.RELEASED


def test_waiting_acquire_sees_inventory_changes(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db", hostname=HOST, backoff=Backoff(initial_s=0.01))
    polls: list[int] = []

    def inventory() -> list[DeviceCandidate]:
        polls.append(1)
        return DEVICES if len(polls) >= 3 else []  # the device shows up on the third poll

    lease = store.acquire(DeviceRequest(profile="2g.20gb"), ALICE, inventory, wait_seconds=5)
    assert lease.uuid == "MIG-g0-2g" and len(polls) == 3


def test_wait_timeout_raises_the_last_error(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db", hostname=HOST, backoff=Backoff(initial_s=0.01))
    store.acquire(DeviceRequest(uuid="MIG-g0-3g"), ALICE, DEVICES)
    with pytest.raises(InUseError, match=r"gave up after waiting 0\.2 s") as info:
        store.acquire(DeviceRequest(uuid="MIG-g0-3g"), BOB, DEVICES, wait_seconds=0.2)
    assert info.value.context["waited_seconds"] == 0.2


def test_not_found_is_not_retried_while_waiting(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.db", hostname=HOST)
    polls: list[int] = []

    def inventory() -> list[DeviceCandidate]:
        polls.append(1)
        return DEVICES

    with pytest.raises(NotFoundError):
        store.acquire(DeviceRequest(uuid="MIG-nope"), ALICE, inventory, wait_seconds=30)
    assert len(polls) == 1


def test_prune_history_drops_only_old_ended_leases(store: LeaseStore, clock: FakeClock) -> None:
    old = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES)
    store.release(old.lease_id, user="alice")
    clock.now += 1000
    recent = store.acquire(DeviceRequest(uuid="MIG-g0-2g"), ALICE, DEVICES)
    store.release(recent.lease_id, user="alice")
    active = store.acquire(DeviceRequest(uuid="MIG-g0-3g"), ALICE, DEVICES)
    clock.now += 10
    assert store.prune_history(older_than_seconds=100) == 1
    remaining = [x.lease_id for x in store.list_leases(active_only=False)]
    assert remaining == [recent.lease_id, active.lease_id]


def test_store_reopens_its_connection_after_close(tmp_path: Path) -> None:
    with LeaseStore(tmp_path / "l.db", hostname=HOST) as store:
        lease = store.acquire(DeviceRequest(), ALICE, DEVICES)
    store.close()  # closing twice is harmless
    assert store.get(lease.uuid) == lease  # the next call opens a fresh connection
