"""Fill in what the catalog does not publish about a GPU model, so that it can be simulated.

Why this exists: a simulated GPU must answer every NVML query (a profile's driver id,
memory, SMs, engines, placements), but the reference publishes all of them for few
models. :func:`complete_model` derives each missing value, never replacing a published
one, and records it with its reason in ``GpuModel.derivations``, so that users can tell
the derived numbers from the facts. The rules, first that applies wins:

* structure: a model without placement units gets one unit per compute slice; a profile
  without placements gets the aligned starts of its size;
* driver id: the id that a profile taking the same share of its GPU (memory and compute
  fractions) with the same suffix has on another model (one table reproduces every
  published id of the catalog);
* memory: a profile of this model with the same memory slices; the same-named profile of a
  sibling (same architecture and slice counts); memory slices x the memory per slice of
  this model's largest known profile, else of its largest profile's name (``7g.80gb``);
* SMs: a profile of this model with the same compute and memory slices; the same NVML
  profile of a sibling whose published SM counts agree with this model's; compute slices x
  the fewest SMs per compute slice of this model, else of the closest model of its family;
* engines: a profile of this model with the same slices and suffix; a sibling as for SMs;
  compute slices x the count per compute slice of this model's smallest plain profile;
  else 0 (unknown).

Pure functions of catalog values. Imported by ``migctl.sim`` and tests; imports
``migctl.model`` and ``migctl.catalog.derive``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from fractions import Fraction

from migctl.catalog.derive import derive_ci_profiles
from migctl.model import CiProfile, Derivation, GiProfile, GpuModel, Placement, Trust

ENGINE_FIELDS = ("ce", "dec", "enc", "jpeg", "ofa")
GI_FIELDS = ("id", "memory_mib", "sm_count", *ENGINE_FIELDS)
TRUST_ORDER = (Trust.VERIFIED, Trust.TRANSCRIPT, Trust.CAPTURED, Trust.DOCUMENTED, Trust.PARTIAL)
_NAME = re.compile(r"^(\d+)g\.(\d+)gb(.*)$")

Found = tuple[int, str]  # a derived value and why
Rule = Callable[[GiProfile], Found | None]
Chooser = Callable[[GiProfile, list[GiProfile]], GiProfile | None]  # the base to scale from


def suffix(profile: GiProfile) -> str:
    """``"+me"``, ``"-me"``, ``"+gfx"``, ``"+me.all"``, or ``""`` for a plain profile."""
    match = _NAME.match(profile.name)
    return match.group(3) if match else ""


def value_of(profile: GiProfile, field: str) -> int | None:
    """A GI profile's ``id``, ``memory_mib``, ``sm_count`` or engine count (None: unknown)."""
    holder = profile.engines if field in ENGINE_FIELDS else profile
    value = getattr(holder, field)
    return value if isinstance(value, int) else None


def with_value(profile: GiProfile, field: str, value: int) -> GiProfile:
    if field in ENGINE_FIELDS:
        return replace(profile, engines=replace(profile.engines, **{field: value}))
    if field == "id":
        return replace(profile, id=value)
    if field == "memory_mib":
        return replace(profile, memory_mib=value)
    if field == "sm_count":
        return replace(profile, sm_count=value)
    raise ValueError(f"not a derivable GI profile field: {field}")


def trust_rank(model: GpuModel) -> int:
    return TRUST_ORDER.index(model.trust)


def complete_model(model: GpuModel, others: Iterable[GpuModel] = ()) -> GpuModel:
    """``model`` with every value a simulated GPU reports filled in, each derived value
    listed in ``derivations``; ``others`` (the catalog) supply siblings and driver ids.
    Values that cannot be derived stay unknown (the simulator then refuses the model)."""
    if not model.mig_capable or not model.gi_profiles:
        return model
    return _Completer(model, [m for m in others if m.mig_capable and m.key != model.key]).run()


class _Completer:
    """One model's completion: the passes in order, and the derivations they record."""

    def __init__(self, model: GpuModel, others: list[GpuModel]) -> None:
        self.model = model
        self.others = sorted(others, key=trust_rank)
        self.notes: list[Derivation] = []

    def run(self) -> GpuModel:
        self._structure()
        for field in GI_FIELDS:
            self._fill(field, self._rules(field))
        self._compute_instances()
        self._totals()
        return replace(self.model, derivations=(*self.model.derivations, *self.notes))

    def note(self, profile: str, field: str, value: object, reason: str) -> None:
        self.notes.append(Derivation(profile, field, str(value), reason))

    # --- passes -------------------------------------------------------------------------

    def _structure(self) -> None:
        model = self.model
        units = model.memory_slices
        compute = model.compute_slices or max(p.compute_slices for p in model.gi_profiles)
        compute = max(compute, 1)  # a malformed file's 0 must not divide
        if units is None:
            units = compute
            self.note("", "memory_slices", units, "not published: one unit per compute slice")
        profiles = [self._placed(p, units, compute) for p in model.gi_profiles]
        self.model = replace(model, memory_slices=units, gi_profiles=tuple(profiles))

    def _placed(self, profile: GiProfile, units: int, compute: int) -> GiProfile:
        size = profile.memory_slices
        if size <= 0 and units % compute == 0:
            size = profile.compute_slices * units // compute
            reason = f"not published: {units // compute} unit(s) per compute slice"
            self.note(profile.name, "memory_slices", size, reason)
            profile = replace(profile, memory_slices=size)
        if not profile.placements and 0 < size <= units:
            starts = tuple(Placement(start, size) for start in range(0, units - size + 1, size))
            text = ",".join(map(str, starts))
            self.note(profile.name, "placements", text, "not published: the aligned starts")
            profile = replace(profile, placements=starts)
        return profile

    def _fill(self, field: str, rules: list[Rule]) -> None:
        """Fill ``field`` where unknown; rules read only the values published before."""
        profiles = [self._filled(p, field, rules) for p in self.model.gi_profiles]
        self.model = replace(self.model, gi_profiles=tuple(profiles))

    def _filled(self, profile: GiProfile, field: str, rules: list[Rule]) -> GiProfile:
        if value_of(profile, field) is not None:
            return profile
        for rule in rules:
            found = rule(profile)
            if found is not None:
                self.note(profile.name, field, found[0], found[1])
                return with_value(profile, field, found[0])
        return profile

    def _compute_instances(self) -> None:
        model = self.model
        result: list[CiProfile] = []
        for gi in model.gi_profiles:
            cis = model.ci_profiles_for(gi.name)
            if not cis:
                cis = derive_ci_profiles(gi, model.architecture)
            result.extend(self._ci_sms(gi, ci) for ci in cis)
        self.model = replace(model, ci_profiles=tuple(result))

    def _ci_sms(self, gi: GiProfile, ci: CiProfile) -> CiProfile:
        if ci.sm_count is not None or gi.sm_count is None:
            return ci
        sms = gi.sm_count * ci.compute_slices // gi.compute_slices
        if not ci.derived:
            self.note(f"CI {ci.name}", "sm_count", sms, f"its share of {gi.name}'s SMs")
        return replace(ci, sm_count=sms)

    def _totals(self) -> None:
        model = self.model
        if model.total_memory_mib is not None:
            return
        largest = max(model.gi_profiles, key=lambda p: p.memory_mib or 0)
        if largest.memory_mib is not None:
            reason = f"not published: the memory of its largest profile ({largest.name})"
            self.note("", "total_memory_mib", largest.memory_mib, reason)
            self.model = replace(model, total_memory_mib=largest.memory_mib)

    # --- rules --------------------------------------------------------------------------

    def _rules(self, field: str) -> list[Rule]:
        if field == "id":
            return [self._id_by_share]
        if field == "memory_mib":
            twin = self._twin(field, lambda p: p.memory_slices)
            return [twin, self._sibling(field, True), self._memory_per_slice, self._memory_named]
        if field == "sm_count":
            twin = self._twin(field, lambda p: (p.compute_slices, p.memory_slices))
            return [
                twin,
                self._sibling(field, False),
                self._per_slice(field, _fewest_sms_per_slice),
            ]
        twin = self._twin(field, lambda p: (p.compute_slices, p.memory_slices, suffix(p)))
        scaled = self._per_slice(field, _smallest_alike)
        return [twin, self._sibling(field, False), scaled, _unknown]

    def _twin(self, field: str, key: Callable[[GiProfile], Hashable]) -> Rule:
        """A profile of this model with the same ``key`` and a published value."""

        def rule(profile: GiProfile) -> Found | None:
            for other in self.model.gi_profiles:
                value = value_of(other, field)
                if other is not profile and value is not None and key(other) == key(profile):
                    return value, f"as {other.name} of this model (the same slices)"
            return None

        return rule

    def siblings(self) -> list[GpuModel]:
        """Models of the same architecture and slice counts, most trusted first."""
        m = self.model
        shape = (m.architecture, m.memory_slices, m.compute_slices)
        return [
            o for o in self.others if (o.architecture, o.memory_slices, o.compute_slices) == shape
        ]

    def _sibling(self, field: str, same_name: bool) -> Rule:
        """The same profile of a sibling whose published values of ``field`` agree."""

        def twin_in(other: GpuModel, profile: GiProfile) -> GiProfile | None:
            for candidate in other.gi_profiles:
                if candidate.nvml_index == profile.nvml_index:
                    return candidate if not same_name or candidate.name == profile.name else None
            return None

        def agrees(other: GpuModel) -> bool:
            for mine in self.model.gi_profiles:
                theirs = twin_in(other, mine)
                pair = (value_of(mine, field), value_of(theirs, field) if theirs else None)
                if None not in pair and pair[0] != pair[1]:
                    return False
            return True

        names = {p.name for p in self.model.gi_profiles}

        def rule(profile: GiProfile) -> Found | None:
            for other in self.siblings():
                if same_name and {p.name for p in other.gi_profiles} != names:
                    continue
                theirs = twin_in(other, profile)
                value = value_of(theirs, field) if theirs else None
                if theirs is not None and value is not None and agrees(other):
                    why = f"as {theirs.name} of {other.key} (same architecture and slices)"
                    return value, why
            return None

        return rule

    def _id_by_share(self, profile: GiProfile) -> Found | None:
        taken = {p.id for p in self.model.gi_profiles if p.id is not None}
        wanted = share(self.model, profile)
        for other in self.others:
            for candidate in other.gi_profiles:
                if candidate.id is None or candidate.id in taken:
                    continue
                if share(other, candidate) == wanted:
                    memory, compute, _ = wanted
                    why = (
                        f"as {candidate.name} of {other.key}, the same share of its GPU "
                        f"(memory {memory}, compute {compute})"
                    )
                    return candidate.id, why
        return None

    def _memory_per_slice(self, profile: GiProfile) -> Found | None:
        known = [p for p in self.model.gi_profiles if p.memory_mib and p.memory_slices]
        if not known:
            return None
        base = max(known, key=lambda p: (p.memory_slices, p.memory_mib or 0))
        assert base.memory_mib is not None
        value = base.memory_mib * profile.memory_slices // base.memory_slices
        per = base.memory_mib / base.memory_slices
        return value, f"{profile.memory_slices} memory slice(s) x {per:g} MiB, as {base.name}"

    def _memory_named(self, profile: GiProfile) -> Found | None:
        named = [p for p in self.model.gi_profiles if _NAME.match(p.name) and p.memory_slices]
        if not named:
            return None
        base = max(named, key=lambda p: p.memory_slices)
        match = _NAME.match(base.name)
        assert match is not None
        gib = int(match.group(2))
        value = gib * 1024 * profile.memory_slices // base.memory_slices
        why = f"{profile.memory_slices} memory slice(s) x {gib}/{base.memory_slices} GiB (the name {base.name})"
        return value, why

    def family(self) -> list[GpuModel]:
        """Models of the same architecture family, closest first (same chip, same slices)."""
        m = self.model
        word = (m.architecture or "").split(" ")[0]
        related = [o for o in self.others if word and (o.architecture or "").startswith(word)]

        def distance(other: GpuModel) -> tuple[bool, bool, int]:
            same_slices = (other.memory_slices, other.compute_slices) == (
                m.memory_slices,
                m.compute_slices,
            )
            return other.architecture != m.architecture, not same_slices, trust_rank(other)

        return sorted(related, key=distance)

    def _per_slice(self, field: str, choose: Chooser) -> Rule:
        """Compute slices x the count per compute slice of the profile ``choose`` picks among
        those publishing ``field``: of this model, else of the closest model of its family."""

        def rule(profile: GiProfile) -> Found | None:
            for source in (self.model, *self.family()):
                known = [p for p in source.gi_profiles if value_of(p, field) is not None]
                base = choose(profile, known)
                if base is not None:
                    count = value_of(base, field) or 0
                    value = count * profile.compute_slices // base.compute_slices
                    where = "" if source is self.model else f" of {source.key}"
                    per = f"{count}/{base.compute_slices}"
                    return (
                        value,
                        f"{profile.compute_slices} compute slice(s) x {per} ({base.name}{where})",
                    )
            return None

        return rule


def _fewest_sms_per_slice(profile: GiProfile, known: list[GiProfile]) -> GiProfile | None:
    counted = [p for p in known if p.sm_count]
    return min(counted, key=lambda p: Fraction(p.sm_count or 0, p.compute_slices), default=None)


def _smallest_alike(profile: GiProfile, known: list[GiProfile]) -> GiProfile | None:
    """The smallest profile with the same suffix (a +me profile has the media engines)."""
    alike = [p for p in known if suffix(p) == suffix(profile)]
    return min(alike, key=lambda p: (p.compute_slices, p.memory_slices), default=None)


def _unknown(profile: GiProfile) -> Found:
    return 0, "not published for this model or a sibling: reported as 0"


def share(model: GpuModel, profile: GiProfile) -> tuple[Fraction, Fraction, str]:
    """The part of its GPU a profile takes: memory and compute fractions, and its suffix."""
    units = model.memory_slices or 1
    compute = model.compute_slices or 1
    return (
        Fraction(profile.memory_slices, units),
        Fraction(profile.compute_slices, compute),
        suffix(profile),
    )
