"""One GPU while ``decide`` runs: its instances, what a reshape would destroy and create.

Why this exists: ``decide`` serves requests one by one and each grant or planned instance
changes what the next request may use; this keeps that working state per GPU and, at the end,
turns the planned changes into a ``Reshape`` whose plan comes from the planner's
``reconfigure`` on a copy of the GPU where every instance that must stay is marked busy, so
the planner itself refuses to touch it. Imported only by ``migctl.repartition.decide``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from migctl.errors import InvalidStateError, MigctlError
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GiProfile, Placement
from migctl.planner import (
    CurrentGi,
    CurrentGpu,
    DesiredCi,
    DesiredGi,
    DesiredLayout,
    DestroyGi,
    reconfigure,
)
from migctl.repartition.decision import NewDeviceGrant, Reshape
from migctl.repartition.make_room import Slot, minimal_destroy, placed
from migctl.repartition.view import Device, GiState, GpuView, free_devices, gi_profile_of, gi_state

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fit:
    """How a profile fits on a GPU: what must be destroyed; ``cost`` orders the options."""

    gpu_index: int
    profile: GiProfile
    destroyed: tuple[Slot, ...]
    opens_reshape: bool
    cost: tuple[float, int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class HoldOption:
    """Where the head of the queue could go once the instances in the way are gone."""

    gpu_index: int
    profile: GiProfile
    placement: Placement
    blocking: tuple[int, ...]  # GI ids in the way
    cost: tuple[int, int, int, float, int, int]  # busy, young, all in the way, size, GPU, start


@dataclass
class GpuWork:
    view: GpuView
    slots: dict[int, Slot]
    states: dict[int, GiState]
    free: list[Device]
    destroyed: set[int] = field(default_factory=set)
    new: list[tuple[GiProfile, str]] = field(default_factory=list)  # (profile, request id)

    @classmethod
    def start(cls, view: GpuView, now: float, min_idle_seconds: float) -> GpuWork:
        slots = {
            gi.gi_id: Slot(gi.gi_id, gi_profile_of(view, gi), gi.placement)
            for gi in view.current.gis
        }
        states = {gi.gi_id: gi_state(view, gi, now, min_idle_seconds) for gi in view.current.gis}
        return cls(view, slots, states, free_devices(view))

    @property
    def index(self) -> int:
        return self.view.gpu_index

    @property
    def reshaping(self) -> bool:
        return bool(self.new)

    @property
    def can_reshape(self) -> bool:
        return not self.view.reconfiguring and self.view.current.mig_enabled

    def split(self, young_eligible: bool = False) -> tuple[list[Slot], list[Slot]]:
        """(instances that stay, instances a reshape may destroy) among those not destroyed."""
        fixed: list[Slot] = []
        eligible: list[Slot] = []
        may_go = {GiState.ELIGIBLE, GiState.YOUNG} if young_eligible else {GiState.ELIGIBLE}
        for gi_id, slot in sorted(self.slots.items()):
            if gi_id in self.destroyed:
                continue
            (eligible if self.states[gi_id] in may_go else fixed).append(slot)
        return fixed, eligible

    def fit(
        self,
        profiles: Sequence[GiProfile],
        young_eligible: bool = False,
        spare: frozenset[int] = frozenset(),
    ) -> Fit | None:
        """The cheapest way to add the first profile of ``profiles`` (smallest first) that fits.

        GIs in ``spare`` (free devices another waiting request could use as they are) are
        destroyed only when nothing else makes room.
        """
        fixed, eligible = self.split(young_eligible)
        kept = [*fixed, *(s for s in eligible if s.gi_id in spare)]
        others = [s for s in eligible if s.gi_id not in spare]
        for profile in profiles:
            fit = self._fit_profile(profile, kept, others)
            if fit is None and len(others) < len(eligible):
                fit = self._fit_profile(profile, fixed, eligible, spare)
            if fit is not None:
                return fit
        return None

    def _fit_profile(
        self,
        profile: GiProfile,
        fixed: Sequence[Slot],
        eligible: Sequence[Slot],
        spare: frozenset[int] = frozenset(),
    ) -> Fit | None:
        wanted = [p for p, _ in self.new]
        gone = minimal_destroy(self.view.model, fixed, eligible, [*wanted, profile])
        if gone is None:
            return None
        total = self.view.model.memory_slices or 1
        gone_ids = {s.gi_id for s in gone}
        used = sum(s.placement.size for s in [*fixed, *eligible] if s.gi_id not in gone_ids)
        cost = (
            profile.memory_slices / total,
            len(gone_ids & spare),
            len(gone),
            sum(s.placement.size for s in gone),
            int(not self.reshaping),
            total - used - sum(p.memory_slices for p in [*wanted, profile]),
            self.index,
        )
        return Fit(self.index, profile, gone, not self.reshaping, cost)

    def reservation_options(self, profile: GiProfile) -> list[HoldOption]:
        """Each legal placement of ``profile``, with the instances in its way (before changes)."""
        options = []
        total = self.view.model.memory_slices or 1
        for placement in profile.placements:
            blocking = [s for s in self.slots.values() if s.placement.overlaps(placement)]
            others = [
                Occupant(s.profile, s.placement)
                for s in self.slots.values()
                if not s.placement.overlaps(placement)
            ]
            if placement_refusal(self.view.model, profile, placement, others) is not None:
                continue
            states = [self.states[s.gi_id] for s in blocking]
            cost = (
                states.count(GiState.BUSY),
                states.count(GiState.YOUNG),
                len(blocking),
                profile.memory_slices / total,
                self.index,
                placement.start,
            )
            ids = tuple(sorted(s.gi_id for s in blocking))
            options.append(HoldOption(self.index, profile, placement, ids, cost))
        return options

    def take_device(self, device: Device) -> None:
        """A grant: the device leaves the free list and its GI becomes busy."""
        self.free.remove(device)
        self.states[device.gi_id] = GiState.BUSY

    def add(self, fit: Fit, request_id: str) -> None:
        gone = {s.gi_id for s in fit.destroyed}
        self.destroyed |= gone
        self.free = [d for d in self.free if d.gi_id not in gone]
        self.new.append((fit.profile, request_id))

    def reshape(self) -> Reshape:
        """The planned change as a layout and an executable plan (raises on a planner bug)."""
        kept = [s for gi_id, s in sorted(self.slots.items()) if gi_id not in self.destroyed]
        placements = placed(self.view.model, kept, [p for p, _ in self.new])
        if placements is None:
            raise InvalidStateError(
                f"GPU {self.index}: the planned instances no longer fit (repartition bug)",
                hint="report this decision's input",
            )
        grants = self._assign(placements)
        layout = self._layout(placements)
        plan = reconfigure(self.view.model, self._protected(), layout)
        destroyed = tuple(sorted(op.gi_id for op in plan.ops if isinstance(op, DestroyGi)))
        if plan.forced or not set(destroyed) <= self.destroyed:
            raise InvalidStateError(
                f"GPU {self.index}: the plan would destroy instances that must stay"
                " (repartition bug)",
                hint="report this decision's input",
            )
        return Reshape(self.index, self.view.model.key, destroyed, layout, plan, grants)

    def _assign(self, placements: Sequence[tuple[str, Placement]]) -> tuple[NewDeviceGrant, ...]:
        pool = [(name, where) for name, where in placements]
        grants = []
        for profile, request_id in self.new:
            spot = next(item for item in pool if item[0] == profile.name)
            pool.remove(spot)
            grants.append(NewDeviceGrant(request_id, self.index, profile.name, spot[1]))
        return tuple(grants)

    def _layout(self, placements: Sequence[tuple[str, Placement]]) -> DesiredLayout:
        wishes = [self._keep(gi) for gi in self.view.current.gis if gi.gi_id not in self.destroyed]
        wishes.extend(DesiredGi(name, where, None) for name, where in placements)
        wishes.sort(key=lambda w: (w.placement.start if w.placement else -1, w.profile))
        return DesiredLayout(tuple(wishes))

    def _keep(self, gi: CurrentGi) -> DesiredGi:
        legal = {c.name: c.placements for c in self.view.model.ci_profiles_for(gi.profile)}
        cis = tuple(
            DesiredCi(
                ci.profile, ci.placement if ci.placement in legal.get(ci.profile, ()) else None
            )
            for ci in sorted(gi.cis, key=lambda c: c.ci_id)
        )
        return DesiredGi(gi.profile, gi.placement, cis)

    def _protected(self) -> CurrentGpu:
        """The current GPU with every instance that must stay marked busy."""
        gis = tuple(
            gi if gi.gi_id in self.destroyed else replace(gi, busy=True)
            for gi in self.view.current.gis
        )
        return replace(self.view.current, gis=gis)


def build_reshape(work: GpuWork) -> Reshape | None:
    """``work.reshape()``, or None (logged) when the planner refuses: the requests keep waiting."""
    try:
        return work.reshape()
    except MigctlError as exc:
        log.error("GPU %d: no reshape: %s", work.index, exc)
        return None
