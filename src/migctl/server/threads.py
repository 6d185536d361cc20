"""Blocking work (NVML, SQLite, the engine) off the event loop, on a bounded thread pool.

Why this module exists: the daemon serves many clients on one asyncio loop; every call that can
block (a GPU call under the GPU lock, a lease transaction waiting for SQLite's write lock, an
apply) runs on this pool so the loop keeps answering. Only ``migctl.server`` imports it.
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
    """``await blocking.run(fn, *args)``: ``fn`` on the pool, its result or exception back."""

    def __init__(self, threads: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="migctl-io")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
