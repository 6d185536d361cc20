"""The packing problem in the form both solvers share: GPU models, demand classes, patterns.

Why this exists: the exact MILP and the greedy heuristic must read one problem and write
one kind of answer, so that their results compare like for like. Demands that accept the
same profiles on every model are merged into one *class* (thousands of pods with the same
size become one number), which keeps both solvers independent of input granularity; GPUs
of one model are interchangeable, which keeps them independent of the GPU count.
Imported only by the planner's packing modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.errors import InvalidInputError
from migctl.model import GiProfile, GpuModel
from migctl.planner.patterns import FitCache, Names, maximal_patterns
from migctl.planner.profiles import require_plannable, size_key
from migctl.planner.sizing import Requirement, meets

# A GPU's contents: sorted (profile name, demand class) pairs.
LabeledState = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Demand:
    """``count`` instances, each of any acceptable profile: named ones or those meeting a need.

    ``profiles`` may name profiles of several models (``1g.10gb`` on H100, ``1g.5gb`` on
    A100); a model offers those it has. ``requirement`` adds every profile meeting it.
    """

    count: int
    profiles: tuple[str, ...] = ()
    requirement: Requirement | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.count < 0:
            raise InvalidInputError(f"demand {self.name}: count must be >= 0, not {self.count}")
        if not self.profiles and self.requirement is None:
            raise InvalidInputError(
                f"demand {self.name}: give acceptable profiles or a size requirement"
            )

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        what = "|".join(self.profiles) or (self.requirement.describe() if self.requirement else "")
        return f"{self.count}x {what}"

    def candidates(self, model: GpuModel) -> tuple[GiProfile, ...]:
        """The profiles of ``model`` this demand accepts, smallest first."""
        wanted = {n.strip().lower() for n in self.profiles}
        found = [
            p
            for p in model.gi_profiles
            if p.name in wanted or (self.requirement and meets(model, p, self.requirement))
        ]
        return tuple(sorted(found, key=size_key))


@dataclass
class DemandClass:
    candidates: tuple[Names, ...]  # per distinct model: acceptable names, smallest first
    count: int
    members: list[tuple[int, int]] = field(default_factory=list)  # (demand index, count)


@dataclass
class Problem:
    models: list[GpuModel]  # distinct models
    gpu_indices: list[list[int]]  # per model: its GPUs' indices, ascending
    classes: list[DemandClass]
    caches: list[FitCache]
    demand_count: int
    _patterns: dict[int, list[Names]] = field(default_factory=dict)

    def patterns(self, model_index: int) -> list[Names]:
        """Maximal patterns of a model over the profiles some class accepts there."""
        if model_index not in self._patterns:
            model = self.models[model_index]
            names = {n for c in self.classes for n in c.candidates[model_index]}
            profiles = [p for p in model.gi_profiles if p.name in names]
            self._patterns[model_index] = maximal_patterns(self.caches[model_index], profiles)
        return self._patterns[model_index]

    def profile(self, model_index: int, name: str) -> GiProfile:
        return self.caches[model_index].by_name[name]


@dataclass
class Allocation:
    """A solver's answer: per model, how many GPUs hold each labelled state."""

    method: str
    optimal: bool
    states: list[dict[LabeledState, int]]  # per model
    unmet: list[int]  # per class
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _distinct_models(gpus: Sequence[GpuModel]) -> tuple[list[GpuModel], list[list[int]]]:
    models: list[GpuModel] = []
    indices: list[list[int]] = []
    seen: dict[int, int] = {}
    for gpu_index, model in enumerate(gpus):
        slot = seen.get(id(model))
        if slot is None:
            slot = next((i for i, m in enumerate(models) if m == model), len(models))
            if slot == len(models):
                require_plannable(model)
                models.append(model)
                indices.append([])
            seen[id(model)] = slot
        indices[slot].append(gpu_index)
    return models, indices


def build_problem(gpus: Sequence[GpuModel], demands: Sequence[Demand]) -> Problem:
    models, indices = _distinct_models(gpus)
    by_key: dict[tuple[Names, ...], DemandClass] = {}
    for demand_index, demand in enumerate(demands):
        if demand.count == 0:
            continue
        key = tuple(tuple(p.name for p in demand.candidates(m)) for m in models)
        entry = by_key.setdefault(key, DemandClass(key, 0))
        entry.count += demand.count
        entry.members.append((demand_index, demand.count))
    classes = sorted(by_key.values(), key=lambda c: c.members[0][0])
    caches = [FitCache(m) for m in models]
    return Problem(models, indices, classes, caches, len(demands))
