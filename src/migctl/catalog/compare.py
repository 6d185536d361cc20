"""Compare a GPU's live geometry (read from the driver) with the catalog's entry.

Why this exists: on a real GPU the driver is the authority. When the catalog and the
driver disagree (a new driver renamed a profile, changed memory sizes), migctl must say
so plainly instead of planning with stale facts.
"""

from __future__ import annotations

from migctl.model import GiProfile, GpuModel

_FIELDS = ("id", "compute_slices", "memory_slices", "memory_mib", "sm_count", "max_instances")
_ENGINES = ("ce", "dec", "enc", "jpeg", "ofa")


def _profile_differences(live: GiProfile, known: GiProfile) -> list[str]:
    diffs = []
    for field in _FIELDS:
        have, want = getattr(live, field), getattr(known, field)
        if field == "memory_slices" and want == 0:
            continue  # the catalog's "unknown" (RTX PRO 5000/4500 publish no placements)
        if want is not None and have != want:
            diffs.append(f"{live.name}: {field} is {have} (catalog: {want})")
    for field in _ENGINES:
        have, want = getattr(live.engines, field), getattr(known.engines, field)
        if want is not None and have != want:
            diffs.append(f"{live.name}: {field.upper()} is {have} (catalog: {want})")
    if known.placements and live.placements != known.placements:
        have_text = ",".join(map(str, live.placements))
        want_text = ",".join(map(str, known.placements))
        diffs.append(f"{live.name}: placements are {have_text} (catalog: {want_text})")
    return diffs


def compare_models(live: GpuModel, known: GpuModel) -> list[str]:
    """Human-readable differences; empty when the catalog matches the driver."""
    diffs: list[str] = []
    live_names = {p.name for p in live.gi_profiles}
    known_names = {p.name for p in known.gi_profiles}
    for name in sorted(known_names - live_names):
        diffs.append(f"{name}: in the catalog but not reported by the driver")
    for name in sorted(live_names - known_names):
        diffs.append(f"{name}: reported by the driver but not in the catalog")
    for profile in live.gi_profiles:
        other = known.gi_profile(profile.name)
        if other is not None:
            diffs.extend(_profile_differences(profile, other))
    return diffs
