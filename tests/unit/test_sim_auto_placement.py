"""Driver auto-placement: ``nvmlDeviceCreateGpuInstance`` without a placement, as published.

Why this exists: migctl always passes explicit placements, but other tools (and
``nvidia-smi mig -cgi`` without ``:start``) let the driver choose, and the order of
creation then decides what fits. NVIDIA does not document the policy; these are the
published observations (MIG user guide known issue and examples, an A100 80GB transcript
on driver 515, an RTX PRO 6000 transcript; see ``migctl/sim/rules.py``). The calls go
straight through the real pynvml to the simulated library. Test-only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pynvml as nv
import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.catalog import Catalog

A100_1G, A100_2G, A100_3G = 19, 14, 9  # A100-SXM4-40GB GI profile ids
RTX_1G, RTX_2G = 14, 5  # RTX PRO 6000 Blackwell Server Edition GI profile ids

Outcome = str | int  # "start:size" of the created GI, or the NVML error code


def open_with_mig(name: str, catalog: Catalog) -> NvmlBackend:
    backend = open_backend(name, catalog=catalog)
    assert backend.set_mig_mode(0, True).done
    return backend


@pytest.fixture
def dgx_a100(catalog: Catalog) -> Iterator[NvmlBackend]:
    backend = open_with_mig("dgx-a100", catalog)
    yield backend
    backend.close()


@pytest.fixture
def rtx_pro(catalog: Catalog) -> Iterator[NvmlBackend]:
    backend = open_with_mig("rtx-pro-6000-node", catalog)
    yield backend
    backend.close()


def create_in_order(backend: NvmlBackend, profile_ids: list[int]) -> list[Outcome]:
    """Like ``nvidia-smi mig -cgi A,B,C``: create each in turn, driver's choice of place."""
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    outcomes: list[Outcome] = []
    for profile_id in profile_ids:
        try:
            gi = nv.nvmlDeviceCreateGpuInstance(handle, profile_id)
        except nv.NVMLError as exc:
            outcomes.append(int(exc.value))
            continue
        placement = nv.nvmlGpuInstanceGetInfo(gi).placement
        outcomes.append(f"{placement.start}:{placement.size}")
    created = sorted(o for o in outcomes if isinstance(o, str))
    assert sorted(str(g.placement) for g in backend.gpu_instances(0)) == created
    return outcomes


def test_small_first_order_fails_on_the_3g(dgx_a100: NvmlBackend) -> None:
    outcomes = create_in_order(dgx_a100, [A100_1G, A100_1G, A100_2G, A100_3G])
    assert all(isinstance(o, str) for o in outcomes[:3])
    assert outcomes[3] == nv.NVML_ERROR_INSUFFICIENT_RESOURCES
    names = sorted(g.profile_name for g in dgx_a100.gpu_instances(0))
    assert names == ["1g.5gb", "1g.5gb", "2g.10gb"]


def test_large_first_order_succeeds(dgx_a100: NvmlBackend) -> None:
    outcomes = create_in_order(dgx_a100, [A100_3G, A100_1G, A100_2G, A100_1G])
    assert all(isinstance(o, str) for o in outcomes), outcomes


def test_2g_then_five_1g(dgx_a100: NvmlBackend) -> None:
    outcomes = create_in_order(dgx_a100, [A100_2G] + [A100_1G] * 5)
    assert outcomes[:2] == ["4:2", "6:1"]
    assert all(isinstance(o, str) for o in outcomes), outcomes


def test_two_3g_put_the_first_at_4(dgx_a100: NvmlBackend) -> None:
    assert create_in_order(dgx_a100, [A100_3G, A100_3G]) == ["4:4", "0:4"]


def test_rtx_pro_6000_2g_1g_1g(rtx_pro: NvmlBackend) -> None:
    assert create_in_order(rtx_pro, [RTX_2G, RTX_1G, RTX_1G]) == ["0:6", "6:3", "9:3"]


def test_no_room_is_insufficient_resources(dgx_a100: NvmlBackend) -> None:
    outcomes = create_in_order(dgx_a100, [0, A100_1G])
    assert outcomes == ["0:8", nv.NVML_ERROR_INSUFFICIENT_RESOURCES]
