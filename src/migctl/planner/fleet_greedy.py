"""Fleet planning without a solver: convert GPUs one option at a time, cheapest first.

Why this exists: the exact model may be too large or too slow for a controller cycle, and
scipy may be missing. Every GPU starts unchanged (its idle instances already serve what
they can); then, for the fewest destroyed instances first, the option that serves the
most extra demand per GPU is applied to as many GPUs of its group as keep that gain, until
nothing more is served. Demand is handed to supply hardest class first, smallest fitting
profile first. Work grows with groups x options, not with GPUs. Imported by
``planner.fleet``.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.planner.fleet_milp import Choice, Give, Group
from migctl.planner.fleet_options import ModelRoom
from migctl.planner.packing_model import DemandClass

Supply = dict[tuple[str, int], int]  # (model key, demanded profile index) -> instances


@dataclass
class Handout:
    """How demand is handed to a given supply (deterministic greedy assignment)."""

    rooms: dict[str, ModelRoom]
    demand: list[DemandClass]

    def __post_init__(self) -> None:
        self.keys = sorted(self.rooms)
        self.order = sorted(range(len(self.demand)), key=self._hardness)

    def _hardness(self, c: int) -> tuple[float, int]:
        shares = []
        for m, key in enumerate(self.keys):
            room = self.rooms[key]
            for name in self.demand[c].candidates[m][:1]:
                profile = next(p for p in room.profiles if p.name == name)
                shares.append(profile.memory_slices / (room.model.memory_slices or 1))
        return (-min(shares, default=0.0), c)

    def hand(self, supply: Supply) -> tuple[dict[Give, int], list[int]]:
        left_supply = dict(supply)
        given: dict[Give, int] = {}
        unmet = [entry.count for entry in self.demand]
        for c in self.order:
            for m, key in enumerate(self.keys):
                names = self.rooms[key].names
                for name in self.demand[c].candidates[m]:
                    slot = (key, names.index(name))
                    take = min(unmet[c], left_supply.get(slot, 0))
                    if take:
                        given[(key, name, c)] = take
                        left_supply[slot] -= take
                        unmet[c] -= take
        return given, unmet

    def unmet(self, supply: Supply) -> int:
        return sum(self.hand(supply)[1])


def _add(supply: Supply, group: Group, option: int, copies: int) -> Supply:
    """``supply`` after ``copies`` GPUs of ``group`` move from no change to ``option``."""
    result = dict(supply)
    before, after = group.options[0].supply, group.options[option].supply
    for p, (old, new) in enumerate(zip(before, after, strict=True)):
        slot = (group.model_key, p)
        result[slot] = result.get(slot, 0) + copies * (new - old)
    return result


def _copies(handout: Handout, supply: Supply, group: Group, option: int, free: int) -> int:
    """How many GPUs to convert at once: double while each copy keeps the first one's gain."""
    base = handout.unmet(supply)
    gain = base - handout.unmet(_add(supply, group, option, 1))
    copies = 1
    while copies * 2 <= free:
        if base - handout.unmet(_add(supply, group, option, copies * 2)) != gain * copies * 2:
            break
        copies *= 2
    return copies


def _best_step(
    handout: Handout, groups: list[Group], counts: list[list[int]], supply: Supply, level: int
) -> tuple[int, int] | None:
    base = handout.unmet(supply)
    best: tuple[int, int, int] | None = None  # (gain, group, option)
    for g, group in enumerate(groups):
        if not counts[g][0]:
            continue
        for o, option in enumerate(group.options):
            if not option.change or option.destroyed != level:
                continue
            gain = base - handout.unmet(_add(supply, group, o, 1))
            if gain > 0 and (best is None or gain > best[0]):
                best = (gain, g, o)
    return None if best is None else (best[1], best[2])


def greedy(groups: list[Group], rooms: dict[str, ModelRoom], demand: list[DemandClass]) -> Choice:
    handout = Handout(rooms, demand)
    counts = [[g.count] + [0] * (len(g.options) - 1) for g in groups]
    supply: Supply = {}
    for group in groups:
        supply = _add(supply, group, 0, 0)
        for p, amount in enumerate(group.options[0].supply):
            slot = (group.model_key, p)
            supply[slot] = supply.get(slot, 0) + amount * group.count
    levels = sorted({o.destroyed for g in groups for o in g.options if o.change})
    for level in levels:
        while handout.unmet(supply):
            step = _best_step(handout, groups, counts, supply, level)
            if step is None:
                break
            g, o = step
            copies = _copies(handout, supply, groups[g], o, counts[g][0])
            counts[g][0] -= copies
            counts[g][o] += copies
            supply = _add(supply, groups[g], o, copies)
    given, unmet = handout.hand(supply)
    return Choice("greedy", False, counts, given, unmet)
