"""A layout sent to the daemon with ``gpus`` is checked for those GPUs only, as ``-i`` does.

Why this exists: the daemon resolved a layout against every GPU and narrowed afterwards, so
the GPU Operator's ``all-1g.5gb`` (no device-filter) sent for the A100s of a mixed node was
refused for the H100's sake (1g.5gb does not exist there). Pure: calls the request resolver
with the machine's models, no daemon. Test-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.server.layouts import resolve
from migctl.server.requests import LayoutRequest

DEFAULT = Path(__file__).parents[1] / "data" / "layouts" / "nvidia-gpu-operator-default.yaml"


def test_gpus_narrow_the_gpus_a_layout_is_checked_against(catalog: Catalog) -> None:
    models = {0: catalog.get("a100-sxm4-40gb"), 1: catalog.get("h100")}
    text = DEFAULT.read_text()
    request = LayoutRequest(layout=text, config="all-1g.5gb", gpus=[0])
    targets, _ = resolve(request, models)
    assert list(targets) == [0]
    assert [gi.profile for gi in targets[0].gis] == ["1g.5gb"] * 7
    with pytest.raises(InvalidInputError) as caught:
        resolve(LayoutRequest(layout=text, config="all-1g.5gb"), models)
    assert "GPU 1" in caught.value.message
