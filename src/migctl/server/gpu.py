"""The daemon's one door to its GPUs: its LocalNode behind one lock, and the GPUs' geometry.

Why this module exists: NVML (pynvml) is process-global and the engine assumes one changer at a
time, so the daemon opens exactly one :class:`~migctl.node.local.LocalNode` and every call of it
that reaches the GPUs holds :attr:`GpuAccess.lock` (re-entrant: a change may read under it).
The lease store needs no such lock: its own transactions make grants exclusive, and ``apply``
destroys a device only inside the store's write lock. GPU geometry (live models, the profile
names a lease may ask for) never changes while the daemon runs and is read once.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from migctl.model import GpuModel, MigDevice
from migctl.node.local import LocalNode

P = ParamSpec("P")
T = TypeVar("T")


class GpuAccess:
    """The node behind a lock, with its cached geometry."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.lock = threading.RLock()
        self._models: dict[int, GpuModel] | None = None

    @contextmanager
    def locked(self) -> Iterator[LocalNode]:
        with self.lock:
            yield self.node

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` (a node method) under the lock (blocking: a worker thread)."""
        with self.lock:
            return fn(*args, **kwargs)

    def models(self) -> dict[int, GpuModel]:
        """Live MIG geometry of every MIG-capable GPU, by index."""
        if self._models is None:
            self._models = self.call(self.node.models)
        return self._models

    def known_profiles(self) -> frozenset[str]:
        """Every GI and CI profile name of this machine's GPUs (what a lease may ask for)."""
        return self.call(self.node.profile_names)

    def mig_devices(self) -> list[MigDevice]:
        """Every MIG device now."""
        inventory = self.call(self.node.inventory)
        return [device for view in inventory.gpus for device in view.devices]
