"""Read-only checks against a real GPU: run with ``pytest --with-gpu -m hardware``.

They never change MIG mode, never create or destroy instances: the backend is opened
read-only, and the one mutation attempted must be refused before any driver call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.catalog.compare import compare_models
from migctl.errors import ReadOnlyError
from migctl.model import Placement

pytestmark = pytest.mark.hardware


@pytest.fixture
def real() -> Iterator[NvmlBackend]:
    backend = open_backend(None, read_only=True)
    yield backend
    backend.close()


def test_every_gpu_is_listed_with_uuid_and_memory(real: NvmlBackend) -> None:
    gpus = real.gpus()
    assert gpus
    for gpu in gpus:
        assert gpu.uuid.startswith("GPU-") and gpu.memory_total_mib > 0


def test_catalog_matches_the_driver(real: NvmlBackend) -> None:
    for gpu in real.gpus():
        if gpu.mig is None:
            continue
        known = real.catalog_model(gpu.index)
        assert known is not None, f"{gpu.name} is not in the catalog"
        assert compare_models(real.live_model(gpu.index), known) == []


def test_profiles_and_placements_are_read_with_mig_off(real: NvmlBackend) -> None:
    for gpu in real.gpus():
        if gpu.mig is None:
            continue
        statuses = real.gi_profiles(gpu.index)
        assert statuses and all(s.profile.placements for s in statuses)
        assert all(0 <= s.free <= s.total for s in statuses)


def test_read_only_refuses_before_the_driver(real: NvmlBackend) -> None:
    gpu = next(g for g in real.gpus() if g.mig is not None)
    profile = real.gi_profiles(gpu.index)[0].profile
    with pytest.raises(ReadOnlyError):
        real.create_gpu_instance(gpu.index, profile.id or 0, Placement(0, profile.memory_slices))
    with pytest.raises(ReadOnlyError):
        real.set_mig_mode(gpu.index, not (gpu.mig and gpu.mig.current))
    after = real.gpu(gpu.index)
    assert after.mig == gpu.mig
