"""Independent checks for the fleet planner tests: random fleets, a greedy baseline, brute force.

Why this exists: the fleet planner groups states, prunes options and solves an integer
program; the tests compare it with the plainest correct things: a per-GPU greedy that any
controller could write, and (on tiny fleets) trying every destroy set and every set of new
instances on every GPU, with served demand counted by bipartite matching.
Imported only by tests/unit/test_fleet_*.py.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel
from migctl.planner import place
from migctl.planner.fleet import Demand, FleetGpu, FleetInstance, FleetPlan
from migctl.planner.profiles import plain_profiles
from tests.unit.planner_oracles import legal


def random_gpu(model: GpuModel, host: str, index: int, rng: random.Random) -> FleetGpu:
    """A GPU with a few random plain instances where ``place`` puts them, some busy."""
    occupants: list[Occupant] = []
    for _ in range(rng.randrange(0, 5)):
        profile = rng.choice(plain_profiles(model))
        placed = place(model, [profile], occupants)
        if placed is not None:
            occupants.extend(placed)
    instances = tuple(
        FleetInstance(o.profile.name, o.placement, busy=rng.random() < 0.4, gi_id=k)
        for k, o in enumerate(occupants)
    )
    return FleetGpu(host, index, model, instances)


def occupant_of(model: GpuModel, instance: FleetInstance) -> Occupant:
    profile = model.gi_profile(instance.profile)
    assert profile is not None
    return Occupant(profile, instance.placement)


def check_plan(gpus: Sequence[FleetGpu], demands: Sequence[Demand], plan: FleetPlan) -> None:
    """Busy instances stay put, layouts are legal, accounting adds up."""
    by_key = {(g.host, g.index): g for g in gpus}
    given = [0] * len(demands)
    for target in plan.targets:
        gpu = by_key[(target.host, target.index)]
        assert set(target.kept) | set(target.destroyed) == set(gpu.instances)
        assert not set(target.kept) & set(target.destroyed)
        assert not any(i.busy for i in target.destroyed), "a busy instance was destroyed"
        kept = [occupant_of(gpu.model, i) for i in target.kept]
        created = []
        for new in target.created:
            profile = gpu.model.gi_profile(new.profile)
            assert profile is not None
            assert profile in demands[new.demand].candidates(gpu.model)
            created.append(Occupant(profile, new.placement))
            given[new.demand] += 1
        assert legal(gpu.model, kept) and legal(gpu.model, created, kept)
        for instance, index in target.serves:
            assert instance in target.kept and not instance.busy
            assert gpu.model.gi_profile(instance.profile) in demands[index].candidates(gpu.model)
            given[index] += 1
    for d, demand in enumerate(demands):
        assert given[d] + plan.unmet[d] == demand.count
    assert plan.served == sum(given)
    assert plan.unmet_bound <= sum(plan.unmet)


def _free_idle(gpu_state: list[tuple[Occupant, bool, bool]]) -> list[int]:
    return [k for k, (_, busy, used) in enumerate(gpu_state) if not busy and not used]


def _serve_one(
    model: GpuModel, state: list[tuple[Occupant, bool, bool]], wanted: Sequence[GiProfile]
) -> bool:
    """Serve one unit on one GPU: an unused idle instance, else room, else destroy idle ones."""
    for k in _free_idle(state):
        if state[k][0].profile in wanted:
            state[k] = (state[k][0], False, True)
            return True
    for size in range(len(_free_idle(state)) + 1):
        for doomed in itertools.combinations(_free_idle(state), size):
            stays = [o for k, (o, _, _) in enumerate(state) if k not in doomed]
            for profile in wanted:
                placed = place(model, [profile], stays)
                if placed is not None:
                    state[:] = [s for k, s in enumerate(state) if k not in doomed]
                    state.append((placed[0], False, True))
                    return True
    return False


def greedy_baseline(gpus: Sequence[FleetGpu], demands: Sequence[Demand]) -> int:
    """Units served by a plain per-GPU greedy: demand by demand, GPU by GPU."""
    states = [[(occupant_of(g.model, i), i.busy, False) for i in g.instances] for g in gpus]
    served = 0
    for demand in demands:
        for _ in range(demand.count):
            for gpu, state in zip(gpus, states, strict=True):
                if _serve_one(gpu.model, state, demand.candidates(gpu.model)):
                    served += 1
                    break
    return served


def _matching(supply: Sequence[str], units: Sequence[frozenset[str]]) -> int:
    """Maximum bipartite matching of demand units to supplied profiles (Kuhn)."""
    owner: dict[int, int] = {}

    def augment(u: int, seen: set[int]) -> bool:
        for s, name in enumerate(supply):
            if name in units[u] and s not in seen:
                seen.add(s)
                if s not in owner or augment(owner[s], seen):
                    owner[s] = u
                    return True
        return False

    return sum(1 for u in range(len(units)) if augment(u, set()))


def _gpu_choices(gpu: FleetGpu, names: set[str]) -> list[tuple[tuple[str, ...], int, bool]]:
    """Every (supplied profiles, destroyed, changed) reachable on one GPU."""
    idle = [i for i in gpu.instances if not i.busy]
    busy = [occupant_of(gpu.model, i) for i in gpu.instances if i.busy]
    profiles = [p for p in gpu.model.gi_profiles if p.name in names]
    choices = []
    for size in range(len(idle) + 1):
        for doomed in itertools.combinations(idle, size):
            stays = [i for i in idle if i not in doomed]
            kept = busy + [occupant_of(gpu.model, i) for i in stays]
            for count in range(8):
                for added in itertools.combinations_with_replacement(profiles, count):
                    if count and place(gpu.model, list(added), kept) is None:
                        continue
                    supply = tuple(i.profile for i in stays) + tuple(p.name for p in added)
                    choices.append((supply, size, bool(size or count)))
    return choices


def brute_force(gpus: Sequence[FleetGpu], demands: Sequence[Demand]) -> tuple[int, int, int]:
    """Best (served, destroyed, reshaped) over every combination (tiny fleets only)."""
    names = {p.name for g in gpus for d in demands for p in d.candidates(g.model)}
    units = [
        frozenset(p.name for g in gpus for p in d.candidates(g.model))
        for d in demands
        for _ in range(d.count)
    ]
    best = (0, 0, 0)
    best_key = (1, 0, 0)
    for combo in itertools.product(*(_gpu_choices(g, names) for g in gpus)):
        supply = [name for choice in combo for name in choice[0]]
        served = _matching(supply, units)
        destroyed = sum(c[1] for c in combo)
        reshaped = sum(1 for c in combo if c[2])
        key = (-served, destroyed, reshaped)
        if best_key == (1, 0, 0) or key < best_key:
            best_key, best = key, (served, destroyed, reshaped)
    return best
