"""reconfigure: plans reach the desired layout, keep what matches, never break busy work.

Plans are executed by a tiny in-memory GPU built on ``migctl.geometry``'s rules (not the
simulator: the planner must stand on its own), which refuses anything a driver refuses.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.errors import InvalidInputError
from migctl.geometry import Occupant, free_placements, placement_refusal
from migctl.model import ComputeInstance, GiProfile, GpuInstance, GpuModel, Placement
from migctl.planner import (
    BusyInstanceError,
    CreateCi,
    CreateGi,
    CurrentCi,
    CurrentGi,
    CurrentGpu,
    DesiredCi,
    DesiredGi,
    DesiredLayout,
    DestroyCi,
    DestroyGi,
    InfeasibleError,
    Plan,
    SetMigMode,
    reconfigure,
)
from migctl.planner.placement import place
from tests.unit.planner_oracles import catalog, models

CATALOG = catalog()
H100 = CATALOG.get("h100-80gb-hbm3")
MODELS = models()
P = Placement


# A tiny GPU that executes plans ------------------------------------------------------


@dataclass
class TinyGi:
    profile: GiProfile
    placement: Placement
    cis: dict[int, tuple[str, Placement, bool]] = field(default_factory=dict)
    busy: bool = False


class TinyGpu:
    def __init__(self, model: GpuModel, current: CurrentGpu) -> None:
        self.model = model
        self.mig = current.mig_enabled
        self.busy_destroyed: list[str] = []
        self.gis: dict[int, TinyGi] = {}
        for gi in current.gis:
            profile = model.gi_profile(gi.profile)
            assert profile is not None
            cis = {ci.ci_id: (ci.profile, ci.placement, ci.busy) for ci in gi.cis}
            self.gis[gi.gi_id] = TinyGi(profile, gi.placement, cis, gi.busy)

    def occupants(self) -> list[Occupant]:
        return [Occupant(g.profile, g.placement) for g in self.gis.values()]

    def apply(self, plan: Plan) -> None:
        for op in plan.ops:
            if isinstance(op, SetMigMode):
                assert not self.gis, "MIG mode changes only on an empty GPU"
                self.mig = op.enabled
            elif isinstance(op, DestroyCi):
                profile, _, busy = self.gis[op.gi_id].cis.pop(op.ci_id)
                assert profile == op.profile
                if busy:
                    self.busy_destroyed.append(f"CI {op.ci_id} of GI {op.gi_id}")
            elif isinstance(op, DestroyGi):
                gi = self.gis[op.gi_id]
                assert not gi.cis, "a GI with compute instances cannot be destroyed"
                if gi.busy:
                    self.busy_destroyed.append(f"GI {op.gi_id}")
                del self.gis[op.gi_id]
            elif isinstance(op, CreateGi):
                self._create_gi(op)
            else:
                self._create_ci(op)

    def _create_gi(self, op: CreateGi) -> None:
        assert self.mig, "GIs need MIG mode on"
        profile = self.model.gi_profile(op.profile)
        assert profile is not None and profile.id == op.profile_id
        refusal = placement_refusal(self.model, profile, op.placement, self.occupants())
        assert refusal is None, refusal
        new_id = next(i for i in itertools.count(1) if i not in self.gis)
        self.gis[new_id] = TinyGi(profile, op.placement)

    def _create_ci(self, op: CreateCi) -> None:
        if op.gi.gi_id is not None:
            gi = self.gis[op.gi.gi_id]
        else:
            (gi,) = [g for g in self.gis.values() if g.placement == op.gi.placement]
        assert gi.placement == op.gi.placement
        (ci_profile,) = [
            c for c in self.model.ci_profiles_for(gi.profile.name) if c.name == op.profile
        ]
        assert ci_profile.nvml_index == op.profile_id
        assert op.placement in ci_profile.placements
        assert all(not where.overlaps(op.placement) for _, where, _ in gi.cis.values())
        same = sum(1 for name, _, _ in gi.cis.values() if name == op.profile)
        assert same < ci_profile.max_instances
        new_id = next(i for i in itertools.count(0) if i not in gi.cis)
        gi.cis[new_id] = (op.profile, op.placement, False)

    def current(self, index: int = 0) -> CurrentGpu:
        gis = tuple(
            CurrentGi(
                gi_id,
                gi.profile.name,
                gi.placement,
                tuple(CurrentCi(i, n, w, b) for i, (n, w, b) in sorted(gi.cis.items())),
                gi.busy,
            )
            for gi_id, gi in sorted(self.gis.items())
        )
        return CurrentGpu(index, gis, self.mig)

    def layout(self) -> Counter[tuple[str, tuple[str, ...]]]:
        return Counter(
            (g.profile.name, tuple(sorted(n for n, _, _ in g.cis.values())))
            for g in self.gis.values()
        )


def wanted_layout(model: GpuModel, desired: DesiredLayout) -> Counter[tuple[str, tuple[str, ...]]]:
    result: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for wish in desired.gis:
        if wish.cis is None:
            (default,) = [c for c in model.ci_profiles_for(wish.profile) if c.is_default]
            cis: tuple[str, ...] = (default.name,)
        else:
            cis = tuple(sorted(c.profile for c in wish.cis))
        result[(wish.profile, cis)] += 1
    return result


# Strategies --------------------------------------------------------------------------


@st.composite
def ci_sets(draw: st.DrawFn, model: GpuModel, profile: GiProfile) -> list[tuple[str, Placement]]:
    options = model.ci_profiles_for(profile.name)
    if draw(st.booleans()):
        (default,) = [c for c in options if c.is_default]
        return [(default.name, default.placements[0])]
    chosen: list[tuple[str, Placement]] = []
    for ci in draw(st.lists(st.sampled_from(options), min_size=1, max_size=4)):
        taken = [w for _, w in chosen]
        same = sum(1 for n, _ in chosen if n == ci.name)
        free = [w for w in ci.placements if not any(w.overlaps(t) for t in taken)]
        if free and same < ci.max_instances:
            chosen.append((ci.name, free[0]))
    return chosen


@st.composite
def gpu_states(draw: st.DrawFn, model: GpuModel, busy: bool) -> CurrentGpu:
    occupants: list[Occupant] = []
    gis: list[CurrentGi] = []
    for _ in range(draw(st.integers(0, 7))):
        profile = draw(st.sampled_from(model.gi_profiles))
        free = free_placements(model, profile, occupants)
        if not free:
            continue
        placement = draw(st.sampled_from(free))
        occupants.append(Occupant(profile, placement))
        cis = tuple(
            CurrentCi(i, name, where, busy and draw(st.booleans()))
            for i, (name, where) in enumerate(draw(ci_sets(model, profile)))
        )
        gis.append(CurrentGi(len(gis) + 1, profile.name, placement, cis))
    return CurrentGpu(0, tuple(gis))


def reachable(model: GpuModel, wishes: list[DesiredGi]) -> bool:
    fixed: list[Occupant] = []
    for wish in wishes:
        profile = model.gi_profile(wish.profile)
        assert profile is not None
        if wish.placement is not None:
            if placement_refusal(model, profile, wish.placement, fixed) is not None:
                return False
            fixed.append(Occupant(profile, wish.placement))
    free = [model.gi_profile(w.profile) for w in wishes if w.placement is None]
    return place(model, [p for p in free if p is not None], fixed) is not None


@st.composite
def desired_layouts(draw: st.DrawFn, model: GpuModel, current: CurrentGpu) -> DesiredLayout:
    candidates: list[DesiredGi] = []
    for gi in current.gis:  # often reuse what exists, sometimes pinned or with its CIs
        if draw(st.booleans()):
            cis = tuple(DesiredCi(ci.profile) for ci in gi.cis) if draw(st.booleans()) else None
            pinned = gi.placement if draw(st.booleans()) else None
            candidates.append(DesiredGi(gi.profile, pinned, cis or None))
    extra = draw(st.lists(st.sampled_from(model.gi_profiles), max_size=4))
    candidates.extend(DesiredGi(p.name) for p in extra)
    wishes: list[DesiredGi] = []
    for wish in draw(st.permutations(candidates)):
        if reachable(model, [*wishes, wish]):
            wishes.append(wish)
    return DesiredLayout(tuple(wishes))


@st.composite
def scenarios(draw: st.DrawFn, busy: bool) -> tuple[GpuModel, CurrentGpu, DesiredLayout]:
    model = draw(st.sampled_from(MODELS))
    current = draw(gpu_states(model, busy))
    return model, current, draw(desired_layouts(model, current))


# Properties --------------------------------------------------------------------------


def check_plan(model: GpuModel, current: CurrentGpu, desired: DesiredLayout, plan: Plan) -> None:
    gpu = TinyGpu(model, current)
    gpu.apply(plan)
    assert gpu.layout() == wanted_layout(model, desired)
    for wish in desired.gis:
        if wish.placement is not None:
            assert any(
                g.profile.name == wish.profile and g.placement == wish.placement
                for g in gpu.gis.values()
            )
    assert bool(gpu.busy_destroyed) == bool(plan.forced)
    forced_text = "; ".join(plan.forced)
    for lost in gpu.busy_destroyed:  # "GI 3" or "CI 1 of GI 3": the GI is named
        assert "GI " + lost.rsplit("GI ", 1)[1] in forced_text
    assert reconfigure(model, gpu.current(), desired).is_noop, "applying twice changes nothing"
    json.dumps(plan.to_dict())


@settings(max_examples=150, deadline=None)
@given(scenarios(busy=True))
def test_plans_reach_the_layout_and_spare_busy_instances(
    case: tuple[GpuModel, CurrentGpu, DesiredLayout],
) -> None:
    model, current, desired = case
    try:
        plan = reconfigure(model, current, desired)
    except BusyInstanceError as error:
        forced = reconfigure(model, current, desired, force=True)
        assert forced.forced and list(error.blockers) == list(forced.forced)
        check_plan(model, current, desired, forced)
        return
    assert not plan.forced
    check_plan(model, current, desired, plan)
    assert reconfigure(model, current, desired).to_dict() == plan.to_dict()


def fewest_gi_destroys(model: GpuModel, current: CurrentGpu, wanted: list[str]) -> int:
    """Brute force: the largest subset of current GIs that can stay (default CIs only)."""
    gis = list(current.gis)
    for size in range(len(gis), -1, -1):
        for kept in itertools.combinations(gis, size):
            left = Counter(wanted) - Counter(g.profile for g in kept)
            if sum(left.values()) != len(wanted) - size:
                continue
            occupants = []
            for g in kept:
                profile = model.gi_profile(g.profile)
                assert profile is not None
                occupants.append(Occupant(profile, g.placement))
            profiles = [model.gi_profile(n) for n in left.elements()]
            if place(model, [p for p in profiles if p], occupants) is not None:
                return len(gis) - size
    raise AssertionError("unreachable")


@settings(max_examples=150, deadline=None)
@given(scenarios(busy=False))
def test_plans_destroy_the_fewest_gpu_instances(
    case: tuple[GpuModel, CurrentGpu, DesiredLayout],
) -> None:
    model, current, desired = case
    simple = DesiredLayout(tuple(DesiredGi(w.profile) for w in desired.gis))
    plan = reconfigure(model, current, simple)
    destroyed = sum(1 for op in plan.ops if isinstance(op, DestroyGi))
    assert destroyed == fewest_gi_destroys(model, current, [w.profile for w in simple.gis])


# Concrete cases ----------------------------------------------------------------------


def gi(gi_id: int, profile: str, start: int, size: int, busy_ci: bool = False) -> CurrentGi:
    model_profile = H100.gi_profile(profile)
    assert model_profile is not None
    (default,) = [c for c in H100.ci_profiles_for(profile) if c.is_default]
    ci = CurrentCi(0, default.name, default.placements[0], busy_ci)
    return CurrentGi(gi_id, profile, P(start, size), (ci,))


def test_keeps_the_instance_that_fits_and_builds_around_it() -> None:
    current = CurrentGpu(0, (gi(7, "1g.10gb", 0, 1), gi(11, "1g.10gb", 4, 1)))
    desired = [DesiredGi("4g.40gb"), *[DesiredGi("1g.10gb")] * 3]
    plan = reconfigure(H100, current, desired)
    assert [op.gi_id for op in plan.ops if isinstance(op, DestroyGi)] == [7]
    assert plan.kept_gi_ids == (11,)
    created = {(op.profile, op.placement) for op in plan.ops if isinstance(op, CreateGi)}
    assert ("4g.40gb", P(0, 4)) in created
    check_plan(H100, current, DesiredLayout(tuple(desired)), plan)


def test_busy_instance_blocks_and_is_named_unless_forced() -> None:
    current = CurrentGpu(3, (gi(7, "1g.10gb", 0, 1, busy_ci=True), gi(11, "1g.10gb", 4, 1)))
    desired = [DesiredGi("4g.40gb"), *[DesiredGi("1g.10gb")] * 3]
    with pytest.raises(BusyInstanceError) as caught:
        reconfigure(H100, current, desired)
    assert "GI 7" in caught.value.message and "GPU 3" in caught.value.message
    assert caught.value.exit_code == 6
    plan = reconfigure(H100, current, desired, force=True)
    assert plan.forced and "GI 7" in plan.forced[0]
    assert [op.busy for op in plan.ops if isinstance(op, DestroyGi)] == [True]


def test_busy_instance_survives_when_the_layout_allows() -> None:
    current = CurrentGpu(0, (gi(1, "3g.40gb", 0, 4, busy_ci=True), gi(2, "3g.40gb", 4, 4)))
    plan = reconfigure(H100, current, [DesiredGi("3g.40gb"), DesiredGi("2g.20gb")])
    assert plan.kept_gi_ids in ((1,), (1, 2)) and not plan.forced
    assert [op.gi_id for op in plan.ops if isinstance(op, DestroyGi)] == [2]


def test_only_compute_instances_change_inside_a_kept_gi() -> None:
    busy_ci = CurrentCi(0, "1c.3g.40gb", P(0, 1), busy=True)
    current = CurrentGpu(0, (CurrentGi(2, "3g.40gb", P(4, 4), (busy_ci,)),))
    wanted = DesiredGi("3g.40gb", cis=(DesiredCi("1c.3g.40gb"),) * 3)
    plan = reconfigure(H100, current, [wanted])
    short = DesiredGi("3g.40gb", cis=(DesiredCi("1c"),) * 3)
    assert reconfigure(H100, current, [short]) == plan
    assert not any(isinstance(op, DestroyGi | DestroyCi) for op in plan.ops)
    creates = [op for op in plan.ops if isinstance(op, CreateCi)]
    assert [(op.gi.gi_id, op.placement) for op in creates] == [(2, P(1, 1)), (2, P(2, 1))]
    check_plan(H100, current, DesiredLayout((wanted,)), plan)


def test_pinned_placement_moves_an_idle_instance() -> None:
    current = CurrentGpu(0, (gi(1, "3g.40gb", 0, 4),))
    plan = reconfigure(H100, current, [DesiredGi("3g.40gb", P(4, 4))])
    kinds = [op.kind for op in plan.ops]
    assert kinds == ["destroy_ci", "destroy_gi", "create_gi", "create_ci"]


def test_mig_mode_changes_come_first_or_last() -> None:
    off = CurrentGpu(0, (), mig_enabled=False)
    plan = reconfigure(H100, off, [DesiredGi("7g.80gb")])
    assert isinstance(plan.ops[0], SetMigMode) and plan.ops[0].enabled and plan.mig_mode
    on = CurrentGpu(0, (gi(1, "7g.80gb", 0, 8),))
    plan = reconfigure(H100, on, DesiredLayout((), mig_enabled=False))
    assert [op.kind for op in plan.ops] == ["destroy_ci", "destroy_gi", "set_mig_mode"]
    assert plan.mig_mode is False


def test_bad_layouts_are_refused_with_reasons() -> None:
    with pytest.raises(InvalidInputError):
        reconfigure(H100, CurrentGpu(0), [DesiredGi("3g.40gb", P(2, 4))])
    with pytest.raises(InvalidInputError):
        reconfigure(H100, CurrentGpu(0), [DesiredGi("1g.10gb", cis=(DesiredCi("2c"),))])
    with pytest.raises(InfeasibleError):
        reconfigure(H100, CurrentGpu(0), [DesiredGi("4g.40gb")] * 2)
    with pytest.raises(InvalidInputError):
        reconfigure(H100, CurrentGpu(0), DesiredLayout((DesiredGi("7g.80gb"),), mig_enabled=False))


def test_plan_json_is_stable() -> None:
    current = CurrentGpu(0, (gi(1, "3g.40gb", 4, 4), gi(2, "2g.20gb", 0, 2)))
    desired = [DesiredGi("3g.40gb"), DesiredGi("1g.10gb"), DesiredGi("1g.10gb")]
    first = json.dumps(reconfigure(H100, current, desired).to_dict(), sort_keys=True)
    assert first == json.dumps(reconfigure(H100, current, desired).to_dict(), sort_keys=True)
    assert '"create_gi"' in first and '"destroy_gi"' in first


def test_current_state_from_backend_values() -> None:
    gis = [GpuInstance(0, 5, 9, "3g.40gb", P(4, 4)), GpuInstance(0, 3, 14, "2g.20gb", P(0, 2))]
    cis = [
        ComputeInstance(0, 5, 0, 2, "3g.40gb", P(0, 3)),
        ComputeInstance(0, 3, 0, 1, "2g.20gb", P(0, 2)),
    ]
    current = CurrentGpu.from_instances(0, gis, cis, busy_cis=[(5, 0)])
    assert [g.gi_id for g in current.gis] == [3, 5]
    assert current.gis[1].in_use and not current.gis[0].in_use
    assert reconfigure(H100, current, [DesiredGi("3g.40gb"), DesiredGi("2g.20gb")]).is_noop
    with pytest.raises(BusyInstanceError):
        reconfigure(H100, current, [DesiredGi("7g.80gb")])
