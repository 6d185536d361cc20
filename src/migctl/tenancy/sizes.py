"""Parse the sizes and durations users type: ``12GiB``, ``500MiB``, ``10GB``; ``30``, ``5m``.

Why this exists: ``migctl lease acquire --memory 12GiB`` and ``migctl run --ttl 2h`` must read
the same way everywhere, and a memory *need* must never be rounded down (a job that needs 10 GB
must not land on a device one MiB short). Binary units (KiB, MiB, GiB, TiB) are powers of 1024,
decimal units (KB, MB, GB, TB) powers of 1000, case-insensitive; a bare number means MiB.
Anyone may import this module; it imports only ``migctl.errors``.
"""

from __future__ import annotations

import math
import re

from migctl.errors import UsageError

MIB_BYTES = 1024 * 1024
_UNIT_BYTES = {
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": MIB_BYTES,
    "mib": MIB_BYTES,
    "g": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
_DURATION_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_SIZE = re.compile(_NUMBER + r"\s*([a-z]*)")
_DURATION = re.compile(_NUMBER + r"\s*([smhd]?)")


def parse_memory_mib(text: str) -> int:
    """``"12GiB"`` -> 12288; ``"10GB"`` -> 9537 (rounded up); ``"512"`` -> 512 (MiB)."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None or match.group(2) not in {"", *_UNIT_BYTES}:
        raise UsageError(
            f"cannot read memory size {text!r}",
            hint="write a number and a unit, e.g. 12GiB, 500MiB or 10GB (a bare number is MiB)",
        )
    number, unit = float(match.group(1)), match.group(2)
    size_bytes = number * (_UNIT_BYTES[unit] if unit else MIB_BYTES)
    return math.ceil(size_bytes / MIB_BYTES - 1e-9)


def parse_duration_s(text: str) -> float:
    """``"30"`` / ``"30s"`` -> 30.0; ``"5m"`` -> 300.0; ``"2h"``; ``"1d"``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(
            f"cannot read duration {text!r}",
            hint="write seconds (30), or a number with s, m, h or d (90s, 5m, 2h, 1d)",
        )
    return float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
