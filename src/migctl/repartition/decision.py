"""What ``decide`` returns: grants of free devices, reshapes with their plans, who keeps waiting.

Why this exists: the daemon applies a decision, logs it, and shows it over REST; the replayer
applies the same decision to its model; tests check it. So it is data: frozen values with a
``to_dict`` that is JSON-ready and identical for identical inputs. Imports the planner's plan
types only; anyone may import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from migctl.model import Placement
from migctl.planner import DesiredLayout, Plan


class WaitReason(enum.StrEnum):
    """Why a request keeps waiting (first that applies, in this order)."""

    UNSERVABLE = "unservable"  # no GPU of this machine has a device or profile that fits it
    NO_FREE_DEVICE = "no_free_device"  # repartitioning is off and no free device matches
    RESERVED = "reserved"  # it would fit only on the GPU reserved for an older request
    BUDGET = "budget"  # it would fit by reshaping, but the hourly budget is spent
    MIN_IDLE = "min_idle"  # it needs idle instances that have not been idle long enough
    BUSY = "busy"  # it needs slices held by busy or leased instances
    RECONFIGURING = "reconfiguring"  # it would fit only on GPUs being reshaped right now


@dataclass(frozen=True, slots=True)
class Grant:
    """Lease an existing free device to a request (no change to the GPU)."""

    request_id: str
    gpu_index: int
    gi_id: int
    ci_id: int
    device_profile: str  # the device's (CI) profile name
    gi_profile: str
    uuid: str | None
    oversize: bool  # larger than the smallest profile that would serve the request

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request_id,
            "gpu": self.gpu_index,
            "gi_id": self.gi_id,
            "ci_id": self.ci_id,
            "device_profile": self.device_profile,
            "gi_profile": self.gi_profile,
            "uuid": self.uuid,
            "oversize": self.oversize,
        }


@dataclass(frozen=True, slots=True)
class NewDeviceGrant:
    """Lease the device of a GI a reshape creates (at ``placement``) to a request."""

    request_id: str
    gpu_index: int
    gi_profile: str
    placement: Placement

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request_id,
            "gpu": self.gpu_index,
            "gi_profile": self.gi_profile,
            "placement": str(self.placement),
        }


@dataclass(frozen=True, slots=True)
class Reshape:
    """One GPU's new layout, the plan reaching it, and who gets the new devices."""

    gpu_index: int
    model_key: str
    destroyed_gi_ids: tuple[int, ...]
    layout: DesiredLayout
    plan: Plan
    grants: tuple[NewDeviceGrant, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu_index,
            "model": self.model_key,
            "destroyed_gi_ids": list(self.destroyed_gi_ids),
            "layout": layout_to_dict(self.layout),
            "plan": self.plan.to_dict(),
            "grants": [g.to_dict() for g in self.grants],
        }


@dataclass(frozen=True, slots=True)
class Waiting:
    request_id: str
    reason: WaitReason
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"request": self.request_id, "reason": self.reason.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Reservation:
    """The GPU held for the head of the queue: nobody else is granted or reshaped there."""

    request_id: str
    gpu_index: int
    gi_profile: str  # what the head will get there
    placement: Placement
    blocking_gi_ids: tuple[int, ...]  # instances that must end or age before it fits

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request_id,
            "gpu": self.gpu_index,
            "gi_profile": self.gi_profile,
            "placement": str(self.placement),
            "blocking_gi_ids": list(self.blocking_gi_ids),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything ``decide`` concluded at ``now``; apply grants, then reshapes."""

    now: float
    mode: str
    grants: tuple[Grant, ...]
    reshapes: tuple[Reshape, ...]
    waiting: tuple[Waiting, ...]
    reservation: Reservation | None
    budget_left: int | None  # reshapes still allowed this hour after this decision

    @property
    def served_ids(self) -> tuple[str, ...]:
        ids = [g.request_id for g in self.grants]
        ids.extend(g.request_id for r in self.reshapes for g in r.grants)
        return tuple(ids)

    def to_dict(self) -> dict[str, object]:
        return {
            "now": self.now,
            "mode": self.mode,
            "grants": [g.to_dict() for g in self.grants],
            "reshapes": [r.to_dict() for r in self.reshapes],
            "waiting": [w.to_dict() for w in self.waiting],
            "reservation": None if self.reservation is None else self.reservation.to_dict(),
            "budget_left": self.budget_left,
        }


def layout_to_dict(layout: DesiredLayout) -> dict[str, object]:
    """The daemon's layout body: ``{mig_enabled, gis: [{profile, placement, cis}]}``."""
    gis: list[dict[str, object]] = []
    for gi in layout.gis:
        cis = None
        if gi.cis is not None:
            cis = [
                {
                    "profile": ci.profile,
                    "placement": None if ci.placement is None else str(ci.placement),
                }
                for ci in gi.cis
            ]
        placement = None if gi.placement is None else str(gi.placement)
        gis.append({"profile": gi.profile, "placement": placement, "cis": cis})
    return {"mig_enabled": layout.mig_enabled, "gis": gis}
