"""Small shared helpers of the planner: resolve profile names, order profiles, test fits.

Why this exists: every planner module needs the same notions ("plain" profile versus a
media/graphics variant, "smaller than", "does this multiset fit on one GPU") and they must
agree. Pure functions of ``migctl.model`` / ``migctl.geometry`` values; imported only by
``migctl.planner`` modules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from migctl.errors import NotFoundError, NotSupportedError
from migctl.geometry import Occupant
from migctl.model import GiProfile, GpuModel
from migctl.planner.placement import place


def is_variant(profile: GiProfile) -> bool:
    """``+me``, ``+me.all``, ``-me`` and ``+gfx`` profiles: chosen only when asked for."""
    return "+" in profile.name or profile.is_no_media


def size_key(profile: GiProfile) -> tuple[int, int, int, str]:
    """Ascending "how much of the GPU": memory slices, compute slices, MiB, then name."""
    return (profile.memory_slices, profile.compute_slices, profile.memory_mib or 0, profile.name)


def plain_profiles(model: GpuModel) -> list[GiProfile]:
    """The model's profiles without media/graphics variants, smallest first."""
    return sorted((p for p in model.gi_profiles if not is_variant(p)), key=size_key)


def require_plannable(model: GpuModel) -> None:
    """Raise NotSupportedError when the catalog lacks what planning needs for ``model``."""
    if not model.plannable:
        raise NotSupportedError(
            f"cannot plan MIG layouts for {model.name}: the catalog does not know its "
            "memory slices and every profile's placements",
            hint="capture the GPU's geometry with `migctl catalog capture` on a machine with it",
            context={"model": model.key},
        )


def resolve_profile(model: GpuModel, name_or_profile: str | GiProfile) -> GiProfile:
    """A GI profile of ``model`` by name (``3g.40gb``, ``MIG 3g.40gb``) or the profile itself."""
    if isinstance(name_or_profile, GiProfile):
        if name_or_profile not in model.gi_profiles:
            raise NotFoundError(
                f"{model.name} has no GPU instance profile {name_or_profile.name}",
                hint="profiles: " + ", ".join(p.name for p in model.gi_profiles),
                context={"model": model.key, "profile": name_or_profile.name},
            )
        return name_or_profile
    profile = model.gi_profile(name_or_profile)
    if profile is None:
        raise NotFoundError(
            f"{model.name} has no GPU instance profile {name_or_profile!r}",
            hint="profiles: " + ", ".join(p.name for p in model.gi_profiles),
            context={"model": model.key, "profile": name_or_profile},
        )
    return profile


def resolve_profiles(model: GpuModel, wanted: Iterable[str | GiProfile]) -> list[GiProfile]:
    return [resolve_profile(model, item) for item in wanted]


def count_text(profiles: Iterable[GiProfile | str]) -> str:
    """``"2x 3g.40gb + 1x 1g.10gb"``: a multiset in the order of first appearance."""
    names = [p if isinstance(p, str) else p.name for p in profiles]
    counts = Counter(names)
    return " + ".join(f"{counts[name]}x {name}" for name in dict.fromkeys(names)) or "nothing"


@lru_cache(maxsize=65536)
def placed_on_empty(model: GpuModel, names: tuple[str, ...]) -> tuple[Occupant, ...] | None:
    """Cached ``place`` on an empty GPU, by sorted profile names; None when impossible."""
    result = place(model, [resolve_profile(model, name) for name in names])
    if result is None:
        return None
    return tuple(sorted(result, key=lambda o: (o.placement.start, o.profile.name)))
