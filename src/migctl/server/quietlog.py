"""Warnings about floods, at most once a minute per source, with how many were left out.

Why this module exists: the rate limit and the connection limits refuse what a flood sends; a
line per refusal would let the flood fill the journal instead. Only ``migctl.server`` imports
this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

EVERY_S = 60.0
MAX_SOURCES = 10_000


class QuietLog:
    """``warn(source, text)``: logged when ``source`` was last logged ``EVERY_S`` ago or more."""

    def __init__(self, log: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # source -> (last logged, left out since)

    def warn(self, source: str, text: str) -> None:
        now = self._clock()
        last, left_out = self._seen.get(source, (-math.inf, 0))
        if now - last < EVERY_S:
            self._seen[source] = (last, left_out + 1)
            return
        if len(self._seen) >= MAX_SOURCES:
            self._seen.clear()
        self._seen[source] = (now, 0)
        more = f" (and {left_out} more like it in the last minute)" if left_out else ""
        self._log.warning("%s%s", text, more)
