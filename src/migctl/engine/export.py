"""The machine's current state as desired layouts (for ``migctl export``).

Why this exists: "make the other nodes like this one" and "save this before I change it"
start from an export; applying an export to the same machine must change nothing, so
every GI and CI is exported at its placement. GPUs without MIG are exported with MIG off
(as mig-parted's export writes them), so an export describes every GPU it was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.backends.base import Backend
from migctl.engine.codec import checkpoint_of
from migctl.engine.current import read_current
from migctl.planner import DesiredLayout


def current_layouts(backend: Backend, gpus: Sequence[int]) -> dict[int, DesiredLayout]:
    """Every GPU's layout as it is now (placements included); MIG off for GPUs without it."""
    result = {}
    for gpu in gpus:
        if backend.gpu(gpu).mig is None:
            result[gpu] = DesiredLayout((), False)
        else:
            result[gpu] = checkpoint_of(read_current(backend, gpu, {}))
    return result
