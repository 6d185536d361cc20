"""Current -> desired on one GPU: the plan that keeps the most and never breaks busy work.

Why this exists: applying a layout must not tear down what already matches, and must never
destroy an instance that has processes or an active lease unless the user forces it. The
search is exact: every subset of the current GPU instances is tried as the kept set, with
every way of matching them to the desired ones; the best plan loses the fewest busy
instances, then destroys the fewest GIs, then keeps the most memory slices, then destroys
the fewest CIs (counting those inside destroyed GIs). New instances get placements that
fit around the kept ones.
Ops come out executable in order: CI destroys, GI destroys, GI creates, CI creates.

Pure: imports ``migctl.model``/``geometry``/``errors`` and the planner. Used by the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.errors import InUseError, InvalidInputError
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GpuModel, Placement
from migctl.planner.ci_layout import CiPlan, matchings, plan_cis, resolve_ci_specs
from migctl.planner.feasibility import diagnose
from migctl.planner.placement import place
from migctl.planner.plan import (
    CurrentGi,
    CurrentGpu,
    DesiredGi,
    DesiredLayout,
    Plan,
)
from migctl.planner.plan_ops import Choice, Wish, build_plan
from migctl.planner.profiles import require_plannable, resolve_profile, size_key


class BusyInstanceError(InUseError):
    """The layout needs destroying instances that are busy; ``blockers`` names them."""

    def __init__(self, message: str, *, blockers: Sequence[str], hint: str) -> None:
        self.blockers = tuple(blockers)
        super().__init__(message, hint=hint, context={"blockers": list(self.blockers)})


def _resolve_wishes(model: GpuModel, desired: Sequence[DesiredGi]) -> list[Wish]:
    wishes = []
    for item in desired:
        profile = resolve_profile(model, item.profile)
        if item.placement is not None and item.placement not in profile.placements:
            legal = ", ".join(str(p) for p in profile.placements)
            raise InvalidInputError(
                f"{profile.name} cannot be placed at {item.placement} on {model.name}",
                hint=f"legal placements: {legal}",
                context={"profile": profile.name, "placement": str(item.placement)},
            )
        specs = resolve_ci_specs(model, profile, item.cis)
        if plan_cis((), specs, force=False) is None:
            names = ", ".join(s.profile.name for s in specs)
            raise InvalidInputError(
                f"compute instances {names} do not fit together in a {profile.name} GI",
                hint=f"a {profile.name} GI has {profile.compute_slices} compute slices",
                context={"profile": profile.name},
            )
        wishes.append(Wish(profile, item.placement, specs))
    return wishes


def _place_wishes(
    model: GpuModel, wishes: Sequence[Wish], kept: Sequence[Occupant]
) -> list[tuple[Wish, Placement]] | None:
    """Placements for new GIs beside the kept ones: fixed placements first, then a search."""
    occupants = list(kept)
    result: list[tuple[Wish, Placement]] = []
    for wish in (w for w in wishes if w.placement is not None):
        assert wish.placement is not None
        if placement_refusal(model, wish.profile, wish.placement, occupants) is not None:
            return None
        occupants.append(Occupant(wish.profile, wish.placement))
        result.append((wish, wish.placement))
    free = [w for w in wishes if w.placement is None]
    placed = place(model, [w.profile for w in free], occupants)
    if placed is None:
        return None
    pool = sorted(free, key=lambda w: (size_key(w.profile), _ci_key(w)))
    for occupant in sorted(placed, key=lambda o: o.placement.start):
        wish = next(w for w in pool if w.profile == occupant.profile)
        pool.remove(wish)
        result.append((wish, occupant.placement))
    return result


def _ci_key(wish: Wish) -> tuple[tuple[str, int], ...]:
    return tuple(
        (s.profile.name, -1 if s.placement is None else s.placement.start) for s in wish.cis
    )


def _wish_classes(wishes: Sequence[Wish]) -> list[tuple[Wish, int]]:
    counts: dict[Wish, int] = {}
    for wish in wishes:
        counts[wish] = counts.get(wish, 0) + 1
    return list(counts.items())


class _Search:
    """Best ``Choice`` over every kept subset and every matching (exact, small)."""

    def __init__(self, model: GpuModel, gis: Sequence[CurrentGi], wishes: Sequence[Wish]) -> None:
        self.model = model
        self.gis = sorted(gis, key=lambda g: g.gi_id)
        self.classes = _wish_classes(wishes)
        self.pairs: dict[tuple[int, int, bool], CiPlan | None] = {}

    def pair(self, gi: CurrentGi, class_index: int, force: bool) -> CiPlan | None:
        key = (gi.gi_id, class_index, force)
        if key not in self.pairs:
            wish = self.classes[class_index][0]
            same = wish.profile.name == gi.profile and wish.placement in (None, gi.placement)
            self.pairs[key] = plan_cis(gi.cis, wish.cis, force) if same else None
        return self.pairs[key]

    def best(self, force: bool) -> Choice | None:
        best: Choice | None = None
        for mask in range(1 << len(self.gis)):
            kept = [g for i, g in enumerate(self.gis) if mask >> i & 1]
            destroyed = tuple(g for i, g in enumerate(self.gis) if not mask >> i & 1)
            if not force and any(g.in_use for g in destroyed):
                continue
            choice = self._best_for(kept, destroyed, force)
            if choice is not None and (best is None or choice.cost < best.cost):
                best = choice
        return best

    def _best_for(
        self, kept: list[CurrentGi], destroyed: tuple[CurrentGi, ...], force: bool
    ) -> Choice | None:
        best: Choice | None = None
        targets = [(index, count) for index, (_, count) in enumerate(self.classes)]

        def compatible(gi: CurrentGi, index: int) -> bool:
            return self.pair(gi, index, force) is not None

        for match in matchings(kept, targets, compatible):
            choice = self._choice(kept, destroyed, match, force)
            if choice is not None and (best is None or choice.cost < best.cost):
                best = choice
        return best

    def _choice(
        self,
        kept: list[CurrentGi],
        destroyed: tuple[CurrentGi, ...],
        match: list[int],
        force: bool,
    ) -> Choice | None:
        left = [count for _, count in self.classes]
        kept_pairs = []
        for gi, index in zip(kept, match, strict=True):
            left[index] -= 1
            ci_plan = self.pair(gi, index, force)
            assert ci_plan is not None
            kept_pairs.append((gi, self.classes[index][0], ci_plan))
        remaining = [w for (w, _), n in zip(self.classes, left, strict=True) for _ in range(n)]
        occupants = [Occupant(w.profile, gi.placement) for gi, w, _ in kept_pairs]
        new = _place_wishes(self.model, remaining, occupants)
        if new is None:
            return None
        busy = sum(g.busy_count for g in destroyed)
        busy += sum(p.busy_destroyed for _, _, p in kept_pairs)
        slices = sum(w.profile.memory_slices for _, w, _ in kept_pairs)
        ci_lost = sum(len(g.cis) for g in destroyed)
        ci_lost += sum(len(p.destroyed) for _, _, p in kept_pairs)
        cost = (busy, len(destroyed), -slices, ci_lost)
        return Choice(tuple(kept_pairs), destroyed, tuple(new), cost)


def _check_reachable(model: GpuModel, wishes: Sequence[Wish]) -> None:
    """Raise InfeasibleError / InvalidInputError when no plan could reach the layout."""
    fixed = [w for w in wishes if w.placement is not None]
    occupants: list[Occupant] = []
    for wish in fixed:
        assert wish.placement is not None
        refusal = placement_refusal(model, wish.profile, wish.placement, occupants)
        if refusal is not None:
            raise InvalidInputError(
                f"the layout's fixed placements conflict on {model.name}: {refusal}",
                hint="change or drop one of the fixed placements",
                context={"model": model.key},
            )
        occupants.append(Occupant(wish.profile, wish.placement))
    free = [w.profile for w in wishes if w.placement is None]
    if place(model, free, occupants) is None:
        raise diagnose(model, free, occupants)


def reconfigure(
    model: GpuModel,
    current: CurrentGpu,
    desired: DesiredLayout | Sequence[DesiredGi],
    *,
    force: bool = False,
) -> Plan:
    """The plan turning ``current`` into ``desired`` on one GPU (see the module docstring).

    Raises ``InfeasibleError`` when the layout cannot exist on this GPU model,
    ``InvalidInputError`` for bad profiles or placements, and ``BusyInstanceError``
    (an ``InUseError``) naming the busy instances that block it unless ``force``.
    """
    require_plannable(model)
    layout = desired if isinstance(desired, DesiredLayout) else DesiredLayout(tuple(desired))
    if not layout.mig_enabled and layout.gis:
        raise InvalidInputError(
            "a layout with MIG mode off cannot list GPU instances",
            hint="remove the instances or enable MIG mode in the layout",
        )
    wishes = _resolve_wishes(model, layout.gis)
    _check_reachable(model, wishes)
    search = _Search(model, current.gis, wishes)
    choice = search.best(force)
    if choice is None:
        forced = search.best(force=True)
        assert forced is not None  # reachable layouts always have a forced plan
        where = f"GPU {current.gpu_index} ({model.name})"
        raise BusyInstanceError(
            f"{where}: the layout needs destroying busy instances: " + "; ".join(forced.busy_lost),
            blockers=forced.busy_lost,
            hint="stop their processes or release their leases, or force the change",
        )
    return build_plan(model, current, layout.mig_enabled, choice)
