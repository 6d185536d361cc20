"""Desired layouts and current GPUs as plain dicts, for the journal and the API.

Why this exists: the journal must record the target and the checkpoint in a form that a
later process (after a crash) reads back exactly; the service sends the same forms.
"""

from __future__ import annotations

from typing import Any

from migctl.model import Placement
from migctl.planner import CurrentGpu, DesiredCi, DesiredGi, DesiredLayout


def _placement(text: object) -> Placement | None:
    return None if text is None else Placement.parse(str(text))


def desired_to_dict(layout: DesiredLayout) -> dict[str, Any]:
    return {
        "mig_enabled": layout.mig_enabled,
        "gis": [
            {
                "profile": gi.profile,
                "placement": None if gi.placement is None else str(gi.placement),
                "cis": None
                if gi.cis is None
                else [
                    {
                        "profile": ci.profile,
                        "placement": None if ci.placement is None else str(ci.placement),
                    }
                    for ci in gi.cis
                ],
            }
            for gi in layout.gis
        ],
    }


def desired_from_dict(raw: dict[str, Any]) -> DesiredLayout:
    gis = []
    for gi in raw.get("gis", []):
        cis = None
        if gi.get("cis") is not None:
            cis = tuple(
                DesiredCi(ci["profile"], _placement(ci.get("placement"))) for ci in gi["cis"]
            )
        gis.append(DesiredGi(gi["profile"], _placement(gi.get("placement")), cis))
    return DesiredLayout(tuple(gis), bool(raw.get("mig_enabled", True)))


def checkpoint_of(current: CurrentGpu) -> DesiredLayout:
    """The layout that recreates ``current`` exactly: every GI and CI at its placement."""
    return DesiredLayout(
        tuple(
            DesiredGi(
                gi.profile,
                gi.placement,
                tuple(DesiredCi(ci.profile, ci.placement) for ci in gi.cis),
            )
            for gi in current.gis
        ),
        current.mig_enabled,
    )


def targets_to_dict(targets: dict[int, DesiredLayout]) -> dict[str, Any]:
    return {str(gpu): desired_to_dict(layout) for gpu, layout in sorted(targets.items())}


def targets_from_dict(raw: dict[str, Any]) -> dict[int, DesiredLayout]:
    return {int(gpu): desired_from_dict(layout) for gpu, layout in raw.items()}
