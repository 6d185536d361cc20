"""The instances an intent asks for: split, size by need, fit a demand; profiles and placements.

Why this exists: people think "split this GPU in 4", "something with 12 GiB" or "four
12 GiB and one 35 GiB instance on this machine", not in profile names, which differ per
GPU model. These helpers turn such intents into exact layouts:

* ``split(model, n)``: n equal instances of the largest profile allowing n;
* ``smallest_profile(model, memory_mib=, sms=, share=)``: the smallest profile meeting a
  need, with a human reason;
* ``parse_demand("4x12GiB,1x35GiB,2x1g.10gb")`` and ``fit_demand(models, demand)``: the
  layout over a machine's GPUs that serves all of it on the fewest GPUs, or what does not
  fit. Sizes are read by ``migctl.sizes`` (``12GiB`` = ``12G``; ``10GB`` is decimal), and
  must carry a unit here.

Pure; imported through ``migctl.planner``. ``migctl.engine.intents`` turns these instances into
each GPU's ``DesiredLayout`` (the form a node plans, applies and checks).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError, InvalidInputError, UsageError
from migctl.geometry import Occupant, remaining_capacity
from migctl.model import GiProfile, GpuModel
from migctl.planner.feasibility import InfeasibleError, Obstacle
from migctl.planner.nearest import NearestLayout
from migctl.planner.packing import Demand, PackResult, pack
from migctl.planner.profiles import placed_on_empty, plain_profiles, require_plannable
from migctl.planner.sizing import Requirement, smallest_meeting
from migctl.sizes import parse_memory_mib

# Split ---------------------------------------------------------------------------------


def _largest_first(profile: GiProfile) -> tuple[int, int, int, str]:
    return (
        -profile.compute_slices,
        -profile.memory_slices,
        -(profile.memory_mib or 0),
        profile.name,
    )


def _most_equal(model: GpuModel) -> tuple[int, GiProfile]:
    """The most equal plain instances the GPU holds, and the largest profile allowing it."""
    ranked = sorted(plain_profiles(model), key=_largest_first)
    best = max(ranked, key=lambda p: remaining_capacity(model, p, ()))  # first of the maxima
    return remaining_capacity(model, best, ()), best


def split(model: GpuModel, n: int) -> list[Occupant]:
    """``n`` equal instances of the largest plain profile that allows ``n``, placed.

    Largest = most compute slices, then memory slices, then MiB. Raises InvalidInputError
    for n < 1 and InfeasibleError when no profile allows n instances on this GPU; ``n`` is
    checked against the most the GPU holds before anything of size ``n`` is built.
    """
    if n < 1:
        raise InvalidInputError(f"cannot split a GPU into {n} instances", hint="use n >= 1")
    require_plannable(model)
    most, profile = _most_equal(model)
    if n <= most:
        for candidate in sorted(plain_profiles(model), key=_largest_first):
            occupants = placed_on_empty(model, (candidate.name,) * n)
            if occupants is not None:
                return list(occupants)
    raise _split_refusal(model, n, most, profile)


def _split_refusal(model: GpuModel, n: int, most: int, profile: GiProfile) -> InfeasibleError:
    """Why ``n`` equal instances do not fit; the nearest split when it is a few short."""
    limit = model.max_gpu_instances
    if limit is not None and n > limit:
        obstacle = Obstacle(
            "max_gpu_instances",
            f"{model.name} allows at most {limit} GPU instances",
            needed=n,
            limit=limit,
        )
    else:
        obstacle = Obstacle(
            "max_instances",
            f"no profile of {model.name} allows {n} instances (at most {most}, of {profile.name})",
            needed=n,
            limit=most,
        )
    occupants = placed_on_empty(model, (profile.name,) * most) or ()
    nearest = []
    if n <= 2 * most:  # "drop k of them" helps when k is small; a billion names do not
        nearest.append(NearestLayout(tuple(occupants), (profile.name,) * (n - most), ()))
    return InfeasibleError(
        f"cannot split {model.name} into {n} equal instances: {obstacle.message}",
        model_key=model.key,
        wanted=[f"{n} equal instances"],
        obstacles=[obstacle],
        nearest=nearest,
        hint=f"the finest equal split is {most}x {profile.name}",
    )


# Sizing by need --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizing:
    profile: GiProfile
    reason: str  # "3g.40gb: 40448 MiB >= 12288 MiB asked; smallest that fits"


def smallest_profile(
    model: GpuModel,
    memory_mib: int | None = None,
    sms: int | None = None,
    share: float | None = None,
    *,
    include_variants: bool = False,
) -> Sizing:
    """The smallest profile of ``model`` giving at least what is asked, and why.

    ``share`` is a fraction of the GPU's compute slices (0.7: 70%). Media and graphics
    variants (+me, +me.all, -me, +gfx) count only with ``include_variants``.
    """
    need = Requirement(memory_mib, sms, share, include_variants)
    profile, reason = smallest_meeting(model, need)
    return Sizing(profile, reason)


# Demand ----------------------------------------------------------------------------------

_ITEM = re.compile(r"^(?:(?P<count>\d+)\s*[x×*]\s*)?(?P<size>\S.*?)$", re.IGNORECASE)
_PROFILE = re.compile(r"^\d+g\.\d+gb(?:[+-][a-z.]+)*$", re.IGNORECASE)
DEMAND_HINT = "write items as COUNTxSIZE separated by commas, e.g. 4x12GiB,1x35GiB,2x1g.10gb"
MAX_COUNT_DIGITS = 9  # counts are checked against the machine; longer ones never fit


@dataclass(frozen=True, slots=True)
class DemandItem:
    count: int
    memory_mib: int | None  # set for sizes
    profile: str | None  # set for profile names
    text: str  # the item as written

    def to_demand(self) -> Demand:
        if self.profile is not None:
            return Demand(self.count, profiles=(self.profile,), label=self.text)
        return Demand(
            self.count, requirement=Requirement(memory_mib=self.memory_mib), label=self.text
        )


def _bad_item(position: int, item: str, why: str, hint: str | None = None) -> InvalidInputError:
    shown = item if len(item) <= 60 else item[:40] + "..." + item[-10:]
    return InvalidInputError(
        f"demand item {position} {shown!r}: {why}",
        hint=DEMAND_HINT if hint is None else f"{hint}; {DEMAND_HINT}",
        context={"item": shown, "position": position},
    )


def _parse_item(position: int, item: str) -> DemandItem:
    text = item.strip()
    match = _ITEM.match(text)
    if not text or match is None:
        raise _bad_item(position, item, "empty item")
    count_text = match.group("count") or "1"
    if len(count_text) > MAX_COUNT_DIGITS:
        raise _bad_item(
            position, item, f"the count {count_text[:12]}... is larger than any machine"
        )
    count = int(count_text)
    if count < 1:
        raise _bad_item(position, item, "the count must be at least 1")
    size = match.group("size").strip()
    if re.fullmatch(r"\d+\s*[x×*]", size):
        raise _bad_item(position, item, "the size after the count is missing")
    if _PROFILE.match(size):
        return DemandItem(count, None, size.lower(), text)
    if not re.match(r"[\d.]", size):
        raise _bad_item(position, item, f"{size!r} is neither a size (12GiB) nor a profile name")
    try:
        memory_mib = parse_memory_mib(size, unit_required=True)
    except UsageError as exc:
        raise _bad_item(position, item, exc.message, exc.hint) from exc
    return DemandItem(count, memory_mib, None, text)


def parse_demand(text: str) -> list[DemandItem]:
    """``"4x12GiB,1x35GiB,2x1g.10gb"`` -> items; InvalidInputError names a bad item."""
    if not text.strip():
        raise InvalidInputError("the demand is empty", hint=DEMAND_HINT)
    return [_parse_item(i, part) for i, part in enumerate(text.split(","), start=1)]


@dataclass(frozen=True, slots=True)
class DemandFit:
    """A machine's layout for a demand: fits or not, per-GPU layouts, and the problems."""

    items: tuple[DemandItem, ...]
    result: PackResult
    problems: tuple[str, ...]  # empty when everything fits
    # when it does not fit for room: per model that can serve every item, the GPUs of that
    # model alone the whole demand needs (at least, at most; equal unless a time limit hit)
    needed: tuple[GpusNeeded, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.problems

    def profiles_used(self) -> dict[str, dict[str, int]]:
        """Per demand item: profile name -> instances."""
        used: dict[str, Counter[str]] = {item.text: Counter() for item in self.items}
        for layout in self.result.layouts:
            for instance in layout.instances:
                used[self.items[instance.demand].text][instance.profile] += 1
        return {text: dict(sorted(counts.items())) for text, counts in used.items()}

    def to_dict(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "problems": list(self.problems),
            "profiles_used": self.profiles_used(),
            "packing": self.result.to_dict(),
            "needed": [n.to_dict() for n in self.needed],
        }

    def require(self) -> DemandFit:
        """Self when everything fits, else InsufficientResourcesError saying what not."""
        if self.problems:
            needs = " or ".join(n.describe() for n in self.needed)
            raise InsufficientResourcesError(
                "the demand does not fit: "
                + "; ".join(self.problems)
                + (f"; the whole demand needs {needs}" if needs else ""),
                hint=self._hint(),
                context={
                    "problems": list(self.problems),
                    "needed": [n.to_dict() for n in self.needed],
                },
            )
        return self

    def _hint(self) -> str:
        return more_gpus_hint(self.needed, self.items)


@dataclass(frozen=True, slots=True)
class GpusNeeded:
    """How many GPUs of one model alone serve a whole demand."""

    model_key: str
    model_name: str
    at_least: int
    at_most: int | None  # None: more than MAX_GPUS_COUNTED

    def describe(self) -> str:
        if self.at_most is None:
            count = f"more than {MAX_GPUS_COUNTED}"
        elif self.at_least == self.at_most:
            count = str(self.at_most)
        else:
            count = f"{self.at_least} to {self.at_most}"
        return f"{count} x {self.model_name}"

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model_key,
            "name": self.model_name,
            "at_least": self.at_least,
            "at_most": self.at_most,
        }


MAX_GPUS_COUNTED = 10_000  # a demand needing more is told "more than this"


def more_gpus_hint(needed: Sequence[GpusNeeded], items: Sequence[DemandItem]) -> str:
    """How to see the layout on enough GPUs, or to ask for less."""
    counted = [n for n in needed if n.at_most is not None]
    first = min(counted, key=lambda n: n.at_most or 0, default=None)
    if first is None:
        return "ask for less, or for smaller instances"
    demand = ",".join(item.text for item in items)
    return (
        f"use {first.at_most} such GPUs (see the layout: `migctl plan --model {first.model_key} "
        f"--gpus {first.at_most} --demand '{demand}'`), or ask for less"
    )


def gpus_needed(model: GpuModel, items: Sequence[DemandItem]) -> GpusNeeded | None:
    """The GPUs of ``model`` alone that serve all of ``items``; None if it cannot (any count)."""
    demands = [item.to_demand() for item in items]
    if not all(demand.candidates(model) for demand in demands):
        return None
    room = min(sum(item.count for item in items), MAX_GPUS_COUNTED)
    result = pack([model] * room, demands)
    if any(result.unmet):
        return GpusNeeded(model.key, model.nvidia_smi_name, room + 1, None)
    return GpusNeeded(
        model.key, model.nvidia_smi_name, result.lower_bound_gpus, result.objective.gpus
    )


def _problem(models: Sequence[GpuModel], item: DemandItem, unmet: int) -> str:
    offered = [m for m in models if item.to_demand().candidates(m)]
    if offered:
        return f"{unmet} of {item.text} did not fit on the {_gpus(models)}"
    if item.profile is not None:
        names = sorted({m.name for m in models})
        return f"{item.text}: no GPU here has profile {item.profile} ({', '.join(names)})"
    reasons = []
    for model in dict.fromkeys(models):
        try:
            smallest_meeting(model, Requirement(memory_mib=item.memory_mib))
        except InsufficientResourcesError as exc:
            reasons.append(f"{exc.message} ({exc.hint})")
    return f"{item.text}: " + "; ".join(reasons)


def _refuse_counts_beyond(models: Sequence[GpuModel], items: Sequence[DemandItem]) -> None:
    """Refuse an item asking more instances than the GPUs hold, before any packing."""
    gpus_of = Counter(models)
    for position, item in enumerate(items, start=1):
        demand = item.to_demand()
        most = sum(
            count * max((remaining_capacity(m, p, ()) for p in demand.candidates(m)), default=0)
            for m, count in gpus_of.items()
        )
        if 0 < most < item.count:  # most 0: no GPU offers it; packing says why
            needed = [n for m in gpus_of if (n := gpus_needed(m, items)) is not None]
            needs = " or ".join(n.describe() for n in needed)
            raise InsufficientResourcesError(
                f"demand item {position} {item.text!r}: {item.count} instances asked, the "
                f"{len(models)} GPU(s) hold at most {most} of them"
                + (f"; the whole demand needs {needs}" if needs else ""),
                hint=more_gpus_hint(needed, items),
                context={
                    "item": item.text,
                    "asked": item.count,
                    "most": most,
                    "needed": [n.to_dict() for n in needed],
                },
            )


def _gpus(models: Sequence[GpuModel]) -> str:
    names = sorted({m.nvidia_smi_name for m in models})
    return f"{len(models)} GPU{'s' if len(models) != 1 else ''} ({', '.join(names)})"


def fit_demand(
    models: Sequence[GpuModel],
    demand: str | Sequence[DemandItem],
    *,
    time_limit_s: float = 10.0,
) -> DemandFit:
    """Fit ``demand`` on a machine whose GPU i is ``models[i]``, on the fewest GPUs.

    Exact for machine sizes (the pattern MILP); the smallest adequate profile is used
    unless a larger one saves a GPU.
    """
    items = parse_demand(demand) if isinstance(demand, str) else list(demand)
    if not models:
        raise InvalidInputError("no GPUs to fit the demand on", hint="give the machine's GPUs")
    _refuse_counts_beyond(models, items)
    result = pack(models, [item.to_demand() for item in items], time_limit_s=time_limit_s)
    problems = tuple(
        _problem(models, item, unmet)
        for item, unmet in zip(items, result.unmet, strict=True)
        if unmet
    )
    needed: tuple[GpusNeeded, ...] = ()
    if problems:
        counts = (gpus_needed(model, items) for model in dict.fromkeys(models))
        needed = tuple(n for n in counts if n is not None)
    return DemandFit(tuple(items), result, problems, needed)
