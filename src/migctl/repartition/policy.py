"""The repartitioning policy: whether the daemon may reshape idle MIG slices, and its limits.

Why this exists: the daemon's configuration, ``decide`` and the trace replayer share one
validated, frozen settings object (pydantic, so the daemon can load it from its config file
and refuse bad values with a message naming the field). Imported by ``migctl.repartition``
and the daemon.

Fields:

* ``mode``: ``off`` serves waiting requests from free devices only (a static layout);
  ``on`` may also reshape idle instances.
* ``max_reconfigurations_per_hour``: reshapes (one per GPU per decision) allowed in any
  sliding hour; None = unlimited.
* ``min_idle_seconds``: an instance must have been idle (no process, no lease) this long
  before it may be destroyed.
* ``aging_seconds``: a waiting request's effective priority grows by one per period
  (0 disables aging).
* ``reserve_after_seconds``: once the request at the head of the queue has waited this long
  and still cannot be served, it reserves one GPU (see ``migctl.repartition.decide``);
  None disables reservations (and with them the no-starvation guarantee).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RECONFIGURATION_WINDOW_S = 3600.0


class Policy(BaseModel):
    """Repartitioning settings (frozen; unknown fields are refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "on"] = "off"
    max_reconfigurations_per_hour: int | None = Field(12, ge=0)
    min_idle_seconds: float = Field(300.0, ge=0)
    aging_seconds: float = Field(600.0, ge=0)
    reserve_after_seconds: float | None = Field(300.0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.mode == "on"

    def budget_left(self, reshape_times_s: tuple[float, ...], now: float) -> int | None:
        """Reshapes still allowed in the hour ending at ``now``; None when unlimited."""
        if self.max_reconfigurations_per_hour is None:
            return None
        recent = sum(1 for t in reshape_times_s if now - RECONFIGURATION_WINDOW_S < t <= now)
        return max(0, self.max_reconfigurations_per_hour - recent)
