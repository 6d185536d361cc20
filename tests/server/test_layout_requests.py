"""A layout sent to the daemon with ``gpus`` is checked for those GPUs only, as ``-i`` does.

Why this exists: the daemon resolved a layout against every GPU and narrowed afterwards, so
the GPU Operator's ``all-1g.5gb`` (no device-filter) sent for the A100s of a mixed node was
refused for the H100's sake (1g.5gb does not exist there). The daemon now resolves what a
``RemoteNode`` sends with the node's one resolver; this asks a real daemon on a simulated mixed
node (2 x A100-40GB, 2 x H100, an A30, an L40S). Test-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.errors import InvalidInputError
from migctl.schemas.layouts import LayoutTarget
from migctl.testing import running_daemon

DEFAULT = Path(__file__).parents[1] / "data" / "layouts" / "nvidia-gpu-operator-default.yaml"


def test_gpus_narrow_the_gpus_a_layout_is_checked_against() -> None:
    target = LayoutTarget.from_file(DEFAULT, "all-1g.5gb")
    with running_daemon("mixed-node", tcp=False) as daemon:
        report = daemon.node.plan(target, gpus=[0, 1])
        assert sorted(report.plans) == [0, 1]
        for plan in report.plans.values():
            assert [gi.profile for gi in plan.final] == ["1g.5gb"] * 7
        with pytest.raises(InvalidInputError) as caught:
            daemon.node.plan(target)
    assert "GPU 2" in caught.value.message
