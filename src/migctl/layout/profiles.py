"""Profile names in layout files -> the catalog's GI and CI profiles of one GPU model.

Why this exists: the native format names GI profiles and CI profiles separately; mig-parted
folds a CI into the key (``1c.3g.40gb`` = a 3g.40gb GI with one 1-slice CI). Both must map
to the catalog's profiles of the GPU at hand, with suggestions when a name is unknown, and
the default CI (one CI spanning the GI) must be spelled the same way everywhere. Pure
lookups; used by resolve and export.
"""

from __future__ import annotations

import difflib
import re

from migctl.model import CiProfile, GiProfile, GpuModel, normalize_profile_name

_CI_PREFIX = re.compile(r"(\d+)c\.(.+)")


def default_ci_name(model: GpuModel, gi_profile: GiProfile) -> str:
    """The CI profile that spans the whole GI (named like the GI by nvidia-smi)."""
    for ci in model.ci_profiles_for(gi_profile.name):
        if ci.is_default:
            return ci.name
    return gi_profile.name


def profile_names(model: GpuModel) -> str:
    return ", ".join(p.name for p in model.gi_profiles) or "none known"


def suggestion(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def gi_profile(model: GpuModel, name: str) -> GiProfile | None:
    return model.gi_profile(normalize_profile_name(name))


def ci_profile(model: GpuModel, gi: GiProfile, name: str) -> CiProfile | None:
    wanted = normalize_profile_name(name)
    return next((ci for ci in model.ci_profiles_for(gi.name) if ci.name == wanted), None)


def split_mig_parted_key(model: GpuModel, key: str) -> tuple[GiProfile, str] | None:
    """``1c.3g.40gb`` -> (3g.40gb, ``1c.3g.40gb``); ``3g.40gb`` -> (3g.40gb, default CI).

    None when the GI profile is unknown for ``model``. A CI name that the GI does not
    offer comes back unchecked; the caller reports it.
    """
    text = normalize_profile_name(key)
    whole = model.gi_profile(text)
    if whole is not None:
        return whole, default_ci_name(model, whole)
    match = _CI_PREFIX.fullmatch(text)
    if match is None:
        return None
    gi = model.gi_profile(match.group(2))
    if gi is None:
        return None
    if int(match.group(1)) == gi.compute_slices:
        return gi, default_ci_name(model, gi)
    return gi, text


def mig_parted_key(model: GpuModel, gi: GiProfile, ci_name: str) -> str:
    """The mig-devices key for a GI holding one CI ``ci_name``."""
    return gi.name if ci_name == default_ci_name(model, gi) else ci_name
