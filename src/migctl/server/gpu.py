"""The daemon's one door to the GPUs: one backend, one lock, cached geometry and devices.

Why this module exists: NVML (pynvml) is process-global and the engine assumes one changer at a
time, so the daemon opens exactly one backend and every call into it holds :attr:`lock`. Reading
every MIG device of an 8-GPU machine costs tens of milliseconds, too much for each lease
request, so :meth:`candidates` serves a list at most ``cache_s`` old (refreshed by one thread
while the others keep using the previous one); an apply invalidates it.
The list is only a hint: the lease store's transaction is what makes grants exclusive. GPU
geometry (live models) never changes while the daemon runs and is read once.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from migctl.backends.base import Backend
from migctl.leases import DeviceCandidate
from migctl.model import GpuModel, MigDevice


class GpuAccess:
    """The backend behind a lock, with cached models and lease candidates."""

    def __init__(self, backend: Backend, *, cache_s: float = 1.0) -> None:
        self.backend = backend
        self.lock = threading.RLock()
        self._cache_s = cache_s
        self._models: dict[int, GpuModel] | None = None
        self._candidates: list[DeviceCandidate] = []
        self._profiles: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._valid = False  # False: the cached list may name devices that no longer exist
        self._refreshing = threading.Lock()
        self._generation = 0

    @contextmanager
    def locked(self) -> Iterator[Backend]:
        with self.lock:
            yield self.backend

    def models(self) -> dict[int, GpuModel]:
        """Live MIG geometry of every MIG-capable GPU, by index."""
        if self._models is None:
            with self.lock:
                self._models = {
                    info.index: self.backend.live_model(info.index)
                    for info in self.backend.gpus()
                    if info.mig is not None
                }
        return self._models

    def known_profiles(self) -> frozenset[str]:
        """Every GI and CI profile name of this machine's GPUs (what a lease may ask for)."""
        if not self._profiles:
            names = {p.name for m in self.models().values() for p in m.gi_profiles}
            names |= {c.name for m in self.models().values() for c in m.ci_profiles}
            self._profiles = frozenset(names)
        return self._profiles

    def mig_devices(self) -> list[MigDevice]:
        with self.lock:
            return [d for gpu in sorted(self.models()) for d in self.backend.mig_devices(gpu)]

    def fresh_candidates(self) -> list[DeviceCandidate] | None:
        """The cached list when it is fresh enough, without ever blocking; else None."""
        if self._valid and time.monotonic() - self._read_at <= self._cache_s:
            return self._candidates
        return None

    def candidates(self, *, max_age_s: float | None = None) -> list[DeviceCandidate]:
        """Every MIG device as a lease candidate, at most ``max_age_s`` (default cache_s) old.

        With the default age, while one thread refreshes an expired list the others go on with
        the previous one instead of queueing behind the GPU lock; after :meth:`invalidate`
        (instances changed) everyone waits for the new list.
        """
        limit = self._cache_s if max_age_s is None else max_age_s
        if time.monotonic() - self._read_at <= limit:
            return self._candidates
        if self._valid and max_age_s is None:
            if not self._refreshing.acquire(blocking=False):
                return self._candidates  # another thread is refreshing it
        else:
            self._refreshing.acquire()
        try:
            if time.monotonic() - self._read_at <= limit:
                return self._candidates
            return self._refresh()
        finally:
            self._refreshing.release()

    def _refresh(self) -> list[DeviceCandidate]:
        with self.lock:
            generation = self._generation
            devices = [self.candidate(d) for d in self.mig_devices()]
            if generation == self._generation:
                self._candidates, self._read_at, self._valid = devices, time.monotonic(), True
        return devices

    def invalidate(self) -> None:
        """Forget the cached device list (after anything that changed instances)."""
        with self.lock:
            self._generation += 1
            self._read_at = float("-inf")
            self._valid = False

    def candidate(self, device: MigDevice) -> DeviceCandidate:
        """One MIG device as a lease candidate (its SM count from the live model)."""
        model = self.models().get(device.gpu_index)
        sm_count = None
        if model is not None:
            for ci in model.ci_profiles_for(device.gi_profile):
                if ci.name == device.ci_profile:
                    sm_count = ci.sm_count
        return DeviceCandidate.from_mig_device(device, sm_count=sm_count)
