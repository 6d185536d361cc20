"""How one GPU can be shared, for the cluster simulations: MIG instances or fractional shares.

Why this exists: the Alibaba openb benchmarks replay the same pods on the same fleet with
different sharing rules and policies; the fleet simulator (``bench.fleet``) only asks a
``GpuRules`` what a GPU's state allows. Two rules:

* ``MigRules``: a GPU in MIG mode; a state is its instances as sorted (profile, start)
  pairs; what may be created where is decided by ``migctl.geometry`` (the same rules as
  the simulator and the planner). Capacity unit: compute slices.
* ``FractionalRules``: FGD's fractional GPU sharing (any share of 1000 milli on one GPU),
  used to check the harness against FGD's published numbers.

Transitions are memoised by state (a fleet has few distinct GPU states).
Imported by ``bench.fleet`` and the openb benchmark modules.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol

from migctl.geometry import Occupant, free_placements, remaining_capacity
from migctl.model import GiProfile, GpuModel, Placement
from migctl.planner import smallest_profile

MigState = tuple[tuple[str, int], ...]  # sorted (profile name, start)


@dataclass(frozen=True, slots=True)
class Option:
    """One way to serve a share on a GPU: the GPU's next state and what to undo later."""

    state: Hashable
    label: Hashable


class GpuRules(Protocol):
    units: int  # capacity of one GPU in this rule's unit
    whole: Hashable  # the share that takes a whole GPU

    def empty(self) -> Hashable: ...

    def options(self, state: Hashable, share: Hashable) -> tuple[Option, ...]: ...

    def units_of(self, share: Hashable) -> int: ...

    def used(self, state: Hashable) -> int: ...

    def room(self, state: Hashable, share: Hashable) -> int: ...

    def remove(self, state: Hashable, label: Hashable) -> Hashable: ...


@dataclass
class MigRules:
    """A GPU of ``model`` in MIG mode."""

    model: GpuModel
    _options: dict[tuple[Hashable, Hashable], tuple[Option, ...]] = field(default_factory=dict)
    _room: dict[tuple[Hashable, Hashable], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name: dict[str, GiProfile] = {p.name: p for p in self.model.gi_profiles}
        self.units = self.model.compute_slices or 7
        self.whole: Hashable = smallest_profile(self.model, share=1.0).profile.name

    def empty(self) -> Hashable:
        return ()

    def occupants(self, state: Hashable) -> list[Occupant]:
        return [
            Occupant(self.by_name[n], Placement(s, self.by_name[n].memory_slices))
            for n, s in _mig(state)
        ]

    def options(self, state: Hashable, share: Hashable) -> tuple[Option, ...]:
        key = (state, share)
        if key not in self._options:
            profile = self.by_name[str(share)]
            found = free_placements(self.model, profile, self.occupants(state))
            self._options[key] = tuple(
                Option(
                    tuple(sorted((*_mig(state), (profile.name, p.start)))), (profile.name, p.start)
                )
                for p in found
            )
        return self._options[key]

    def units_of(self, share: Hashable) -> int:
        return self.by_name[str(share)].compute_slices

    def used(self, state: Hashable) -> int:
        return sum(self.by_name[n].compute_slices for n, _ in _mig(state))

    def room(self, state: Hashable, share: Hashable) -> int:
        """How many more ``share`` instances fit beside the state (NVML's remaining capacity)."""
        key = (state, share)
        if key not in self._room:
            profile = self.by_name[str(share)]
            self._room[key] = remaining_capacity(self.model, profile, self.occupants(state))
        return self._room[key]

    def remove(self, state: Hashable, label: Hashable) -> Hashable:
        items = list(_mig(state))
        items.remove(_pair(label))
        return tuple(items)


@dataclass
class FractionalRules:
    """A GPU shared by milli-GPU requests, as in FGD's simulator (state: milli used)."""

    units: int = 1000
    whole: Hashable = 1000

    def empty(self) -> Hashable:
        return 0

    def options(self, state: Hashable, share: Hashable) -> tuple[Option, ...]:
        used, milli = _int(state), _int(share)
        return (Option(used + milli, milli),) if used + milli <= self.units else ()

    def units_of(self, share: Hashable) -> int:
        return _int(share)

    def used(self, state: Hashable) -> int:
        return _int(state)

    def room(self, state: Hashable, share: Hashable) -> int:
        return (self.units - _int(state)) // max(_int(share), 1)

    def remove(self, state: Hashable, label: Hashable) -> Hashable:
        return _int(state) - _int(label)


def _mig(state: Hashable) -> MigState:
    assert isinstance(state, tuple)
    return state


def _pair(label: Hashable) -> tuple[str, int]:
    assert isinstance(label, tuple) and len(label) == 2
    return (str(label[0]), int(label[1]))


def _int(value: Hashable) -> int:
    assert isinstance(value, int)
    return value
