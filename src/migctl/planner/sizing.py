"""Sizing by need: which GI profiles give at least this much memory, SMs or compute share.

Why this exists: users and workloads state needs ("12 GiB", "30 SMs", "70% of a GPU"),
not profile names, and names differ per GPU model. A ``Requirement`` turns a need into the
acceptable profiles of any model; ``smallest_profile`` picks the smallest one with a
human reason. Media/graphics variants (+me, +me.all, -me, +gfx) are only considered when
asked for. Pure; imported by the planner's intent_instances and packing modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError, InvalidInputError
from migctl.model import GiProfile, GpuModel
from migctl.planner.profiles import is_variant, size_key

SHARE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Requirement:
    """At least this much of each given resource; None means "any"."""

    memory_mib: int | None = None
    sms: int | None = None
    share: float | None = None  # fraction of the GPU's compute slices, 0 < share <= 1
    include_variants: bool = False

    def __post_init__(self) -> None:
        if self.memory_mib is None and self.sms is None and self.share is None:
            raise InvalidInputError(
                "a size requirement needs memory_mib, sms or share",
                hint="e.g. memory_mib=12288, sms=30 or share=0.5",
            )
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise InvalidInputError(f"memory_mib must be positive, not {self.memory_mib}")
        if self.sms is not None and self.sms <= 0:
            raise InvalidInputError(f"sms must be positive, not {self.sms}")
        if self.share is not None and not 0 < self.share <= 1:
            raise InvalidInputError(
                f"share must be a fraction in (0, 1], not {self.share}",
                hint="0.7 means 70% of the GPU's compute",
            )

    def describe(self) -> str:
        parts = []
        if self.memory_mib is not None:
            parts.append(f"{self.memory_mib} MiB")
        if self.sms is not None:
            parts.append(f"{self.sms} SMs")
        if self.share is not None:
            parts.append(f"{self.share:.2f} of the compute")
        return " and ".join(parts)


def compute_share(model: GpuModel, profile: GiProfile) -> float:
    """The profile's fraction of the GPU's compute slices (3g on a 7-slice GPU: 3/7)."""
    total = model.compute_slices or max((p.compute_slices for p in model.gi_profiles), default=1)
    return profile.compute_slices / total


def meets(model: GpuModel, profile: GiProfile, need: Requirement) -> bool:
    if is_variant(profile) and not need.include_variants:
        return False
    if need.memory_mib is not None and (profile.memory_mib or 0) < need.memory_mib:
        return False
    if need.sms is not None and (profile.sm_count or 0) < need.sms:
        return False
    return not (
        need.share is not None and compute_share(model, profile) + SHARE_TOLERANCE < need.share
    )


def profiles_meeting(model: GpuModel, need: Requirement) -> list[GiProfile]:
    """Every profile of ``model`` meeting ``need``, smallest first."""
    return sorted((p for p in model.gi_profiles if meets(model, p, need)), key=size_key)


def _reason_parts(model: GpuModel, profile: GiProfile, need: Requirement) -> list[str]:
    parts = []
    if need.memory_mib is not None:
        parts.append(f"{profile.memory_mib} MiB >= {need.memory_mib} MiB asked")
    if need.sms is not None:
        parts.append(f"{profile.sm_count} SMs >= {need.sms} SMs asked")
    if need.share is not None:
        total = model.compute_slices or profile.compute_slices
        parts.append(
            f"{profile.compute_slices}/{total} compute slices = "
            f"{compute_share(model, profile):.2f} >= {need.share:.2f} asked"
        )
    return parts


def _largest_text(model: GpuModel, need: Requirement) -> str:
    pool = [p for p in model.gi_profiles if need.include_variants or not is_variant(p)]
    parts = []
    if need.memory_mib is not None:
        best = max(pool, key=lambda p: p.memory_mib or 0)
        parts.append(f"most memory: {best.name} with {best.memory_mib} MiB")
    if need.sms is not None:
        best = max(pool, key=lambda p: p.sm_count or 0)
        parts.append(f"most SMs: {best.name} with {best.sm_count}")
    if need.share is not None:
        best = max(pool, key=lambda p: p.compute_slices)
        parts.append(f"most compute: {best.name} ({compute_share(model, best):.2f})")
    return "; ".join(parts)


def smallest_meeting(model: GpuModel, need: Requirement) -> tuple[GiProfile, str]:
    """The smallest profile meeting ``need`` and why; InsufficientResourcesError if none."""
    found = profiles_meeting(model, need)
    if not found:
        unknown = need.memory_mib is not None and all(
            p.memory_mib is None for p in model.gi_profiles
        )
        detail = "the catalog does not know its profiles' memory" if unknown else ""
        raise InsufficientResourcesError(
            f"no GPU instance profile of {model.name} offers {need.describe()}"
            + (f" ({detail})" if detail else ""),
            hint=_largest_text(model, need) or "see `migctl catalog show`",
            context={"model": model.key, "need": need.describe()},
        )
    profile = found[0]
    reason = f"{profile.name}: " + ", ".join(_reason_parts(model, profile, need))
    return profile, reason + "; smallest that fits"
