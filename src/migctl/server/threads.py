"""Blocking work (NVML, SQLite, the engine) off the event loop, in lanes of threads.

Why this module exists: the daemon serves many clients on one asyncio loop; every call that can
block runs on a thread so the loop keeps answering. Not on one big pool, though: SQLite has one
writer at a time, so lease transactions run on their own single thread (``lease``) and the
daemon's own database (audit rows, tokens) on another (``state``). Many threads contending for
the same write lock only spin in busy-retries and fight over the GIL with the event loop thread
(measured: with 32 threads per-request CPU doubled and throughput halved under 200 clients).
Everything else (GPU reads under the GPU lock, planning, job submission) uses the ``run`` pool.

Only ``migctl.server`` imports it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Blocking:
    """``await blocking.run(fn, *args)`` (or ``.lease``/``.state``): ``fn`` on a thread."""

    def __init__(self, threads: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="migctl-io")
        self.lease_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migctl-lease")
        self.state_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migctl-state")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await _on(self.executor, functools.partial(fn, *args, **kwargs))

    async def lease(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """On the lease store's single thread."""
        return await _on(self.lease_lane, functools.partial(fn, *args, **kwargs))

    async def state(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """On the daemon database's single thread."""
        return await _on(self.state_lane, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        for pool in (self.executor, self.lease_lane, self.state_lane):
            pool.shutdown(wait=True, cancel_futures=True)


async def _on(pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, call)
