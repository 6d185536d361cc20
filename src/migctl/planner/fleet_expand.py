"""From a solver's counts to per-GPU targets: which GPU takes which option, and placements.

Why this exists: the solvers decide "k GPUs of this group take that option" and "n
instances of this profile go to that demand"; the controller needs, per real GPU, what to
keep, destroy and create, at which placement, for which demand. GPUs of a group take the
options in (host, index) order; demand goes to kept idle instances first, then to new
room GPU by GPU. Each changed GPU then destroys only the fewest of its option's idle
instances that the instances it really creates need (exact search, then ``place``), and
a GPU left with nothing to create is not changed at all. Deterministic. Imported by
``planner.fleet``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from migctl.geometry import Occupant
from migctl.planner.fleet_milp import Choice, Give, Group
from migctl.planner.fleet_model import FleetGpu, FleetInstance, GpuTarget, NewInstance
from migctl.planner.fleet_options import ModelRoom, Option, StateClass
from migctl.planner.packing_model import DemandClass
from migctl.planner.placement import place


@dataclass
class _Record:
    gpu: FleetGpu
    state: StateClass
    option: Option
    serves: list[tuple[FleetInstance, int]] = field(default_factory=list)
    new: list[tuple[str, int]] = field(default_factory=list)  # (profile, demand)

    def idle_kept(self) -> Iterator[FleetInstance]:
        by_slot = {i.slot: i for i in self.gpu.instances}
        for bit, occupant in enumerate(self.state.idle):
            if not self.option.destroy >> bit & 1:
                yield by_slot[_slot(occupant)]


def _slot(occupant: Occupant) -> tuple[str, int, int]:
    return (occupant.profile.name, occupant.placement.start, occupant.placement.size)


def _records(groups: list[Group], choice: Choice) -> list[_Record]:
    records = []
    for g, group in enumerate(groups):
        members = [(state, gpu) for state in group.classes for gpu in state.gpus]
        order = [*range(1, len(group.options)), 0]
        position = 0
        for o in order:
            for _ in range(choice.counts[g][o]):
                state, gpu = members[position]
                records.append(_Record(gpu, state, state.options[o]))
                position += 1
    return sorted(records, key=lambda r: (r.gpu.host, r.gpu.index))


def _take(members: list[list[int]]) -> int:
    """The next demand index of a class (its members in order), one instance."""
    members[0][1] -= 1
    demand_index = members[0][0]
    if not members[0][1]:
        members.pop(0)
    return demand_index


def _hand_out(
    records: list[_Record],
    rooms: dict[str, ModelRoom],
    demand: list[DemandClass],
    given: dict[Give, int],
) -> list[list[list[int]]]:
    """Give each instance its demand; returns each class's members left (the unmet)."""
    idle: dict[tuple[str, str], deque[tuple[_Record, FleetInstance]]] = {}
    room: dict[tuple[str, str], deque[_Record]] = {}
    for record in records:
        key = record.gpu.model.key
        for instance in record.idle_kept():
            idle.setdefault((key, instance.profile), deque()).append((record, instance))
        for name in record.option.added:
            room.setdefault((key, name), deque()).append(record)
    left = [[[d, n] for d, n in entry.members] for entry in demand]
    keys = sorted(rooms)
    for c, entry in enumerate(demand):
        for m, key in enumerate(keys):
            for name in entry.candidates[m]:
                count = given.get((key, name, c), 0)
                for _ in range(count):
                    demand_index = _take(left[c])
                    if idle.get((key, name)):
                        record, instance = idle[(key, name)].popleft()
                        record.serves.append((instance, demand_index))
                    else:
                        room[(key, name)].popleft().new.append((name, demand_index))
    return left


def _fewest_destroyed(record: _Record) -> tuple[int, list[Occupant]]:
    """The smallest subset of the option's destroy set that makes room, and placements."""
    bits = [b for b in range(len(record.state.idle)) if record.option.destroy >> b & 1]
    by_name = {p.name: p for p in record.gpu.model.gi_profiles}
    wanted = [by_name[name] for name, _ in record.new]
    for size in range(len(bits) + 1):
        for chosen in itertools.combinations(bits, size):
            mask = sum(1 << b for b in chosen)
            stays = [o for b, o in enumerate(record.state.idle) if not mask >> b & 1]
            placed = place(record.gpu.model, wanted, [*record.state.busy, *stays])
            if placed is not None:
                return mask, placed
    raise AssertionError("the option's own destroy set always makes room")  # pragma: no cover


def _target(record: _Record) -> GpuTarget:
    gpu = record.gpu
    mask, placed = _fewest_destroyed(record) if record.new else (0, [])
    doomed = {_slot(o) for b, o in enumerate(record.state.idle) if mask >> b & 1}
    kept = tuple(sorted((i for i in gpu.instances if i.slot not in doomed), key=_by_place))
    destroyed = tuple(sorted((i for i in gpu.instances if i.slot in doomed), key=_by_place))
    pending = list(record.new)
    created = []
    for occupant in sorted(placed, key=lambda o: o.placement.start):
        entry = next(e for e in pending if e[0] == occupant.profile.name)
        pending.remove(entry)
        created.append(NewInstance(entry[0], occupant.placement, entry[1]))
    serves = tuple(sorted(record.serves, key=lambda s: _by_place(s[0])))
    return GpuTarget(gpu.host, gpu.index, gpu.model.key, kept, destroyed, tuple(created), serves)


def _by_place(instance: FleetInstance) -> tuple[int, str]:
    return (instance.placement.start, instance.profile)


def expand(
    groups: list[Group],
    rooms: dict[str, ModelRoom],
    demand: list[DemandClass],
    choice: Choice,
    demand_count: int,
) -> tuple[list[GpuTarget], list[int]]:
    """Targets of the GPUs that change or serve demand (by host, index); unmet per demand."""
    records = _records(groups, choice)
    left = _hand_out(records, rooms, demand, choice.given)
    targets = [_target(r) for r in records if r.new or r.serves]
    unmet = [0] * demand_count
    for members in left:
        for demand_index, count in members:
            unmet[demand_index] += count
    return targets, unmet
