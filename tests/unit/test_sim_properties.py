"""Hypothesis: random create/destroy sequences never break the simulator's invariants.

Why this exists: the maximal-layout sweep proves that legal layouts are accepted; this
proves that nothing illegal ever slips through, whatever the order. Random sequences of
creates (random profile, legal or illegal placement) and destroys run through
``NvmlBackend`` on simulated H100, A100 and RTX PRO 6000 GPUs (state in memory). After
every step: no two instances overlap, no count is exceeded, each create succeeded exactly
when the rules (written here, independently of ``migctl.geometry``) allow it, and the
remaining capacity, possible placements and free placements reported match a count made
here from the instances read back. Test-only.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import combinations

import pynvml as nv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migctl.backends.nvml import NvmlBackend
from migctl.catalog import load_catalog
from migctl.errors import InsufficientResourcesError, InvalidInputError
from migctl.geometry import Occupant, free_placements
from migctl.model import GiProfile, GpuInstance, GpuModel, Placement
from migctl.sim import SimLibrary, open_sim

CATALOG = load_catalog()
MACHINES = ["memory:h100-single", "memory:dgx-a100", "memory:rtx-pro-6000-node"]
Held = list[tuple[GiProfile, Placement]]


@contextmanager
def simulated_gpu(spec: str) -> Iterator[tuple[NvmlBackend, GpuModel]]:
    backend = NvmlBackend(CATALOG, library=SimLibrary(open_sim(spec, CATALOG)))
    try:
        assert backend.set_mig_mode(0, True).done
        model = backend.catalog_model(0)
        assert model is not None
        yield backend, model
    finally:
        backend.close()


def overlaps(a: Placement, b: Placement) -> bool:
    return a.start < b.start + b.size and b.start < a.start + a.size


def media_blocked(profile: GiProfile, held: Held) -> bool:
    if profile.name.endswith("+me.all"):
        return any(not other.name.endswith("-me") for other, _ in held)
    return any(o.name.endswith("+me.all") for o, _ in held) and not profile.name.endswith("-me")


def room_for(model: GpuModel, profile: GiProfile, held: Held) -> int:
    """How many more of ``profile`` the counts and media rules allow (placement aside)."""
    if media_blocked(profile, held):
        return 0
    room = profile.max_instances - sum(1 for other, _ in held if other.name == profile.name)
    if model.max_gpu_instances is not None:
        room = min(room, model.max_gpu_instances - len(held))
    return max(room, 0)


def free_of(profile: GiProfile, held: Held) -> list[Placement]:
    return [p for p in profile.placements if not any(overlaps(p, q) for _, q in held)]


def expected_capacity(model: GpuModel, profile: GiProfile, held: Held) -> int:
    """The most further instances of ``profile``: largest disjoint set of free placements."""
    free = free_of(profile, held)
    most = 0
    for size in range(len(free), 0, -1):
        if any(
            all(not overlaps(a, b) for a, b in combinations(group, 2))
            for group in combinations(free, size)
        ):
            most = size
            break
    return min(most, room_for(model, profile, held))


def allowed(model: GpuModel, profile: GiProfile, placement: Placement, held: Held) -> bool:
    return (
        placement in profile.placements
        and placement in free_of(profile, held)
        and room_for(model, profile, held) > 0
    )


def held_from(model: GpuModel, instances: list[GpuInstance]) -> Held:
    held: Held = []
    for instance in instances:
        profile = model.gi_profile(instance.profile_id)
        assert profile is not None and profile.name == instance.profile_name
        held.append((profile, instance.placement))
    return held


def possible_placements(profile_id: int) -> tuple[Placement, ...]:
    array = (nv.c_nvmlGpuInstancePlacement_t * 16)()
    count = ctypes.c_uint(len(array))
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, array, ctypes.byref(count))
    return tuple(Placement(int(array[i].start), int(array[i].size)) for i in range(count.value))


def check_invariants(backend: NvmlBackend, model: GpuModel, held: Held) -> None:
    for (_, a), (_, b) in combinations(held, 2):
        assert not overlaps(a, b), f"{a} overlaps {b}"
    for profile, placement in held:
        assert placement in profile.placements
        assert sum(1 for other, _ in held if other.name == profile.name) <= profile.max_instances
    assert model.max_gpu_instances is None or len(held) <= model.max_gpu_instances
    occupants = [Occupant(profile, placement) for profile, placement in held]
    for status in backend.gi_profiles(0):
        profile = status.profile
        assert status.free == expected_capacity(model, profile, held), profile.name
        assert profile.id is not None
        assert possible_placements(profile.id) == profile.placements  # static, as NVML documents
        blocked = room_for(model, profile, held) == 0
        expected_free = [] if blocked else free_of(profile, held)
        assert free_placements(model, profile, occupants) == expected_free, profile.name


def random_placement(model: GpuModel, profile: GiProfile) -> st.SearchStrategy[Placement]:
    slices = model.memory_slices or 8
    anywhere = st.builds(
        Placement,
        st.integers(0, slices),
        st.sampled_from(sorted({profile.memory_slices, 1, 2, 4})),
    )
    return st.one_of(st.sampled_from(profile.placements), anywhere)


def try_create(
    backend: NvmlBackend, model: GpuModel, profile: GiProfile, placement: Placement, held: Held
) -> Held:
    """Create; assert it succeeded exactly when allowed; return the new expected set."""
    assert profile.id is not None
    legal = allowed(model, profile, placement, held)
    if legal:
        created = backend.create_gpu_instance(0, profile.id, placement)
        assert (created.profile_name, created.placement) == (profile.name, placement)
        return [*held, (profile, placement)]
    expected_error = (
        InvalidInputError if placement not in profile.placements else InsufficientResourcesError
    )
    with pytest.raises(expected_error):
        backend.create_gpu_instance(0, profile.id, placement)
    return held


@pytest.mark.parametrize("spec", MACHINES)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_sequences_keep_the_invariants(spec: str, data: st.DataObject) -> None:
    with simulated_gpu(spec) as (backend, model):
        held: Held = []
        for _ in range(data.draw(st.integers(1, 24), label="steps")):
            instances = backend.gpu_instances(0)
            if instances and data.draw(st.integers(0, 3), label="destroy?") == 0:
                victim = data.draw(st.sampled_from(instances), label="destroy")
                backend.destroy_gpu_instance(0, victim.id)
                held = [(p, q) for p, q in held if q != victim.placement]
            else:
                profile = data.draw(st.sampled_from(model.gi_profiles), label="profile")
                placement = data.draw(random_placement(model, profile), label="placement")
                held = try_create(backend, model, profile, placement, held)
            read_back = held_from(model, backend.gpu_instances(0))
            assert sorted((p.name, q) for p, q in read_back) == sorted((p.name, q) for p, q in held)
            check_invariants(backend, model, read_back)
