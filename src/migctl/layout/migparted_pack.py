"""mig-parted's packing of compute-instance counts into GPU instances, replicated exactly.

Why this exists: since 2022 (mig-parted commit 00d6a4c "Add ability to specify a count for
CIs") a mig-parted count of ``"1c.2g.10gb": 6`` means six 1-slice compute instances, which
share GPU instances: three 2g.10gb GIs holding two CIs each. A node that mig-parted set up
holds exactly that, so migctl must read the same counts into the same GIs, or ``assert``
fails and ``apply`` destroys a CI. The rule, from mig-parted's ``SetMigConfig``
(``pkg/mig/config/config.go``) and ``MigConfig.Flatten`` (``pkg/types/mig_config.go``):

1. every count is flattened into one item per instance, ordered by the key's ``<g>`` (GI
   slices) descending, then its ``<c>`` (CI slices; ``<g>`` when absent) descending, then
   its ``+`` attributes descending as text (``me.all`` > ``me`` > none); mig-parted leaves
   the order of keys equal in all three to Go's map order, migctl orders them by key;
2. items are created in that order; an item whose GI profile is that of the GI created
   last goes into that GI when the driver can still create its CI there (the first free
   CI placement, and the CI profile's per-GI limit); otherwise it gets a new GI.

So ``2g.10gb`` (a full CI) always has its own GI, ``1c.2g.10gb`` items fill 2g.10gb GIs
two at a time, and ``2c.4g.40gb: 1, 1c.4g.40gb: 2`` share one 4g.40gb GI. mig-parted
tries other orders only when the hardware refuses this one; migctl places GIs itself
(exactly), so the first order is the one it reproduces. Pure; used by
:mod:`migctl.layout.resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migctl.layout import profiles
from migctl.layout.types import GpuLayout, InstanceRule, WantedInstance
from migctl.model import CiProfile, GiProfile, GpuModel, Placement

_KEY = re.compile(r"(?:(?P<c>\d+)c\.)?(?P<g>\d+)g\.\d+gb(?:\+(?P<attrs>.*))?")


@dataclass(frozen=True, slots=True)
class CiKind:
    """The compute instance one count asks for: name, size and where it may go in a GI."""

    name: str
    compute_slices: int
    max_per_gi: int
    placements: tuple[Placement, ...] = ()  # in compute slices; empty: unknown

    @classmethod
    def of(cls, ci: CiProfile) -> CiKind:
        return cls(ci.name, ci.compute_slices, ci.max_instances, ci.placements)

    @classmethod
    def whole(cls, name: str, gi: GiProfile) -> CiKind:
        """The CI spanning ``gi``, when the catalog does not describe it."""
        return cls(name, gi.compute_slices, 1)


@dataclass(frozen=True, slots=True)
class Count:
    """One ``mig-devices`` item: its key, what it resolved to, and how many."""

    rule: InstanceRule
    gi: GiProfile
    ci: CiKind
    count: int

    def order(self) -> tuple[int, int, str]:
        """(G, C, attributes) of the key, as mig-parted parses it."""
        match = _KEY.fullmatch(self.rule.profile.strip().lower())
        if match is None:  # resolve only passes keys of this form
            return (self.gi.compute_slices, self.ci.compute_slices, "")
        g = int(match["g"])
        return (g, int(match["c"] or g), match["attrs"] or "")


@dataclass(slots=True)
class PackedGi:
    """One GPU instance of the result: its profile, its CIs in creation order, the rule."""

    rule: InstanceRule
    profile: GiProfile
    compute: list[str] = field(default_factory=list)
    _taken: int = 0  # compute slices in use, as a bit mask
    _used: int = 0  # compute slices in use, as a number (CI placements unknown)

    def add(self, ci: CiKind) -> bool:
        """Create ``ci`` here if the driver could (first free placement); False if not."""
        if self.compute.count(ci.name) >= ci.max_per_gi:
            return False
        if not ci.placements:
            if self._used + ci.compute_slices > self.profile.compute_slices:
                return False
        else:
            free = [p for p in ci.placements if not p.mask() & self._taken]
            if not free:
                return False
            self._taken |= min(free, key=lambda p: p.start).mask()
        self._used += ci.compute_slices
        self.compute.append(ci.name)
        return True


def flattened(counts: Sequence[Count]) -> list[Count]:
    """The counts in mig-parted's creation order (see the module docstring)."""
    ordered = sorted(counts, key=lambda c: c.rule.profile)
    ordered.sort(key=lambda c: c.order()[2], reverse=True)  # stable: ties keep key order
    ordered.sort(key=lambda c: c.order()[:2], reverse=True)
    return ordered


def pack(counts: Sequence[Count]) -> list[PackedGi]:
    """The GIs mig-parted would create for ``counts``, each with its CIs.

    Counts must already be bounded (resolve checks them against the model first). A CI
    that fits in no GI of its profile, even an empty one, raises ValueError.
    """
    gis: list[PackedGi] = []
    current: PackedGi | None = None
    for item in flattened(counts):
        for _ in range(item.count):
            if current is not None and current.profile == item.gi and current.add(item.ci):
                continue
            current = PackedGi(item.rule, item.gi)
            if not current.add(item.ci):
                raise ValueError(f"{item.ci.name} fits in no {item.gi.name} GPU instance")
            gis.append(current)
    return gis


def kind_of(model: GpuModel, gi: GiProfile, ci_name: str) -> CiKind | None:
    """The CI ``ci_name`` of a ``gi`` GPU instance on ``model``; None if it has no such CI."""
    ci = profiles.ci_profile(model, gi, ci_name)
    if ci is not None:
        return CiKind.of(ci)
    return CiKind.whole(ci_name, gi) if ci_name == profiles.default_ci_name(model, gi) else None


def packed_layout(model: GpuModel, counts: Mapping[str, int]) -> GpuLayout:
    """The layout mig-parted makes of ``counts`` (keys valid for ``model``, as exported)."""
    items = []
    for key, count in counts.items():
        split = profiles.split_mig_parted_key(model, key)
        kind = None if split is None else kind_of(model, *split)
        if split is None or kind is None:
            raise ValueError(f"{key} is not a profile of {model.name}")
        items.append(
            Count(InstanceRule("", key, "", count, compute_from_name=True), split[0], kind, count)
        )
    return GpuLayout(
        True, tuple(WantedInstance(g.profile.name, None, tuple(g.compute)) for g in pack(items))
    )
