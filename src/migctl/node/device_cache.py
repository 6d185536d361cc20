"""The MIG devices a node leases from, read at most a few seconds ago.

Why this module exists: every lease attempt needs the machine's MIG devices as candidates, and
reading them is about 1,500 NVML calls on an 8-GPU machine (tens of milliseconds). A daemon
serves hundreds of waiting clients, each retrying: reading the machine for every try made it
serve 13 lease cycles a second instead of 166. The daemon's node keeps the list for
``max_age_s`` (its ``device_cache_s``, 2 s by default); any change this node makes to the GPU
instances drops it at once, so only a change made behind the daemon's back (``nvidia-smi``) is
seen up to that late, as before. A node made by ``open_node`` keeps nothing (``max_age_s`` 0):
each call reads the machine. Only ``migctl.node`` imports this module.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.backends.base import Backend
    from migctl.leases import DeviceCandidate


class CandidateCache:
    """The lease candidates of one backend, kept ``max_age_s`` seconds (0: never kept)."""

    def __init__(self, max_age_s: float = 0.0) -> None:
        self.max_age_s = max_age_s
        self._read_at: float | None = None
        self._candidates: list[DeviceCandidate] = []
        self._profiles: frozenset[str] | None = None

    def candidates(self, backend: Backend) -> list[DeviceCandidate]:
        """The candidates now, or as read at most ``max_age_s`` ago."""
        from migctl.tenancy.selection import candidates

        now = time.monotonic()
        fresh = self._read_at is not None and now - self._read_at <= self.max_age_s
        if self.max_age_s <= 0 or not fresh:
            self._candidates = candidates(backend)
            self._read_at = now
        return list(self._candidates)

    def profile_names(self, backend: Backend) -> frozenset[str]:
        """The machine's MIG profile names, read once: a GPU's geometry does not change."""
        if self._profiles is None:
            from migctl.node.leasing import profile_names

            self._profiles = profile_names(backend)
        return self._profiles

    def invalidate(self) -> None:
        """The GPU instances changed: the next call reads the machine."""
        self._read_at = None
