"""The GPU catalog: MIG geometry of every known GPU model, as frozen package data.

Why this exists: planning, the simulator and offline commands need hardware facts without
a GPU. The facts live in ``data/gpus.json`` (built by ``tools/build_catalog.py`` from the
project's reference, with sources and a trust level per model). Extra models written by
``migctl catalog capture`` load from files named in ``MIGCTL_CATALOG`` (``os.pathsep``
separated) or passed to :func:`load_catalog`.

Lookup only; no logic beyond it. Imports ``migctl.model`` and ``migctl.errors``.
"""

from __future__ import annotations

from migctl.catalog.codec import model_from_dict, model_to_dict
from migctl.catalog.store import (
    CATALOG_ENV,
    Catalog,
    load_catalog,
    normalize_key,
    read_catalog_file,
    require_mig,
)

__all__ = [
    "CATALOG_ENV",
    "Catalog",
    "load_catalog",
    "model_from_dict",
    "model_to_dict",
    "normalize_key",
    "read_catalog_file",
    "require_mig",
]
