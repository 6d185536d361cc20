"""Device choice and the lease value types (pure: no database)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InsufficientResourcesError, InUseError, NotFoundError, UsageError
from migctl.leases import DeviceCandidate, DeviceRequest, EndReason, Lease, LeaseOwner
from migctl.leases.choose import choose_device
from migctl.model import GpuProcess, MigDevice, Placement

PROFILES = {"1g.10gb": (9_984, 16), "2g.20gb": (19_968, 32), "3g.40gb": (40_192, 60)}


def _lease(uuid: str, user: str = "alice", lease_id: int = 1) -> Lease:
    return Lease(
        lease_id=lease_id, uuid=uuid, gpu_index=0, gi_id=1, ci_id=0, profile="1g.10gb",
        memory_mib=9_984, sm_count=16, user=user, uid=1001, host="node1", job="train",
        pid=None, created_at=0.0, ttl_seconds=None, heartbeat_at=0.0, expires_at=None,
    )  # fmt: skip


@st.composite
def inventories(draw: st.DrawFn) -> tuple[list[DeviceCandidate], dict[str, Lease]]:
    count = draw(st.integers(min_value=0, max_value=10))
    devices, active = [], {}
    for index in range(count):
        profile = draw(st.sampled_from(sorted(PROFILES)))
        memory_mib, sms = PROFILES[profile]
        known_sms = draw(st.booleans())
        device = DeviceCandidate(
            uuid=f"MIG-{index}",
            gpu_index=draw(st.integers(0, 3)),
            gi_id=draw(st.integers(1, 14)),
            ci_id=0,
            profile=profile,
            memory_mib=memory_mib,
            sm_count=sms if known_sms else None,
            busy=draw(st.booleans()),
        )
        devices.append(device)
        if draw(st.booleans()):
            active[device.uuid] = _lease(device.uuid, lease_id=index)
    return devices, active


requests = st.builds(
    DeviceRequest,
    profile=st.none() | st.sampled_from(sorted(PROFILES)),
    min_memory_mib=st.none() | st.integers(0, 50_000),
    min_sm_count=st.none() | st.integers(0, 70),
)


@settings(max_examples=200, deadline=None)
@given(inventories(), requests)
def test_choice_is_free_matching_and_smallest(
    inventory: tuple[list[DeviceCandidate], dict[str, Lease]], request: DeviceRequest
) -> None:
    devices, active = inventory
    eligible = [d for d in devices if request.matches(d) and not d.busy and d.uuid not in active]
    try:
        chosen = choose_device(request, devices, active)
    except InsufficientResourcesError:
        assert eligible == []
        return
    assert chosen in eligible
    for other in eligible:  # nothing eligible is smaller, nor equal-sized on a lower GPU/GI
        assert (chosen.memory_mib, chosen.sm_count or 0) <= (other.memory_mib, other.sm_count or 0)
        if (other.memory_mib, other.sm_count) == (chosen.memory_mib, chosen.sm_count):
            assert (chosen.gpu_index, chosen.gi_id) <= (other.gpu_index, other.gi_id)


@settings(max_examples=100, deadline=None)
@given(inventories(), st.integers(0, 11))
def test_exact_choice(inventory: tuple[list[DeviceCandidate], dict[str, Lease]], n: int) -> None:
    devices, active = inventory
    uuid = f"MIG-{n}"
    target = next((d for d in devices if d.uuid == uuid), None)
    expected: type[Exception] | None = None
    if target is None:
        expected = NotFoundError
    elif uuid in active or target.busy:
        expected = InUseError
    if expected is None:
        assert choose_device(DeviceRequest(uuid=uuid), devices, active) == target
    else:
        with pytest.raises(expected):
            choose_device(DeviceRequest(uuid=uuid), devices, active)


def test_request_validation() -> None:
    with pytest.raises(UsageError, match="not both"):
        DeviceRequest(uuid="MIG-a", profile="1g.10gb")
    with pytest.raises(UsageError, match="min_memory_mib"):
        DeviceRequest(min_memory_mib=-1)
    with pytest.raises(UsageError, match="min_sm_count"):
        DeviceRequest(min_sm_count=-5)


def test_request_descriptions() -> None:
    assert DeviceRequest().describe() == "any MIG device"
    assert DeviceRequest(uuid="MIG-a").describe() == "device MIG-a"
    both = DeviceRequest(profile="1g.10gb", min_memory_mib=5, min_sm_count=7).describe()
    assert both == "profile 1g.10gb, memory >= 5 MiB, SMs >= 7"


def test_candidate_from_mig_device() -> None:
    mig = MigDevice(
        uuid="MIG-x", gpu_index=2, gi_id=5, ci_id=1, gi_profile="3g.40gb",
        ci_profile="1c.3g.40gb", placement=Placement(4, 4), memory_total_mib=40_192,
        memory_used_mib=0, processes=(GpuProcess(pid=9, used_memory_mib=100, gi_id=5, ci_id=1),),
    )  # fmt: skip
    candidate = DeviceCandidate.from_mig_device(mig, sm_count=16)
    assert candidate == DeviceCandidate("MIG-x", 2, 5, 1, "1c.3g.40gb", 40_192, 16, busy=True)
    idle = DeviceCandidate.from_mig_device(replace(mig, processes=()))
    assert not idle.busy and idle.sm_count is None


def test_owner_current_and_descriptions() -> None:
    owner = LeaseOwner.current(job="train", pid=42)
    assert owner.user and owner.host and (owner.job, owner.pid) == ("train", 42)
    assert LeaseOwner("bob", 2, "h").describe() == "bob"
    assert LeaseOwner("bob", 2, "h", job="j", pid=7).describe() == "bob (job j, pid 7 on h)"


def test_lease_to_dict_is_json_ready() -> None:
    lease = _lease("MIG-a")
    data = json.loads(json.dumps(lease.to_dict()))
    assert (data["uuid"], data["active"], data["end_reason"]) == ("MIG-a", True, None)
    ended = replace(lease, ended_at=5.0, end_reason=EndReason.EXPIRED, ended_by="migctl")
    data = json.loads(json.dumps(ended.to_dict()))
    assert (data["active"], data["end_reason"], data["ended_at"]) == (False, "expired", 5.0)
    assert lease.owner == LeaseOwner("alice", 1001, "node1", job="train")
    assert EndReason("holder-died") is EndReason.HOLDER_DIED
