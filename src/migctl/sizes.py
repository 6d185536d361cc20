"""Parse the sizes and durations users type: ``12GiB``, ``12G``, ``500MiB``, ``10GB``; ``5m``.

Why this exists: ``plan --memory``, ``plan --demand``, ``lease acquire --memory``, ``run
--memory`` and the daemon's demand bodies must read a size the same way, so there is exactly
one parser (``tests/unit/test_sizes.py`` checks no second unit table appears). A memory
*need* is never rounded down (a job that needs 10 GB must not land on a device one MiB short).

Units, case-insensitive: ``KiB MiB GiB TiB`` and the bare letters ``K M G T`` are powers of
1024 (``12G`` = 12 GiB, as ``docker -m 12g`` and nvidia-smi's GiB columns read it); ``KB MB
GB TB`` are powers of 1000 (SI), rounded up to whole MiB; ``B`` is bytes. A number without a
unit is MiB, except where the caller asks for a unit (a demand item: ``4x12`` is ambiguous).
Sizes must be more than 0 and at most 1 PiB (no GPU comes close). Anyone may import this
module; it imports only ``migctl.errors``.
"""

from __future__ import annotations

import math
import re

from migctl.errors import UsageError

MIB_BYTES = 1024 * 1024
MAX_MIB = 1024**3  # 1 PiB: refuse sooner than carry a number no GPU has
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
SIZE_HINT = (
    "write a number and a unit, e.g. 12GiB (= 12G), 500MiB or 10GB (decimal); a bare number is MiB"
)


def parse_memory_mib(text: str, *, unit_required: bool = False) -> int:
    """``"12GiB"``/``"12G"`` -> 12288; ``"10GB"`` -> 9537 (rounded up); ``"512"`` -> 512 MiB.

    ``unit_required``: a bare number is refused instead of read as MiB.
    """
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None or match.group(2) not in {"", *_UNIT_BYTES}:
        raise UsageError(f"cannot read memory size {text!r}", hint=SIZE_HINT)
    number, unit = float(match.group(1)), match.group(2)
    if not unit and unit_required:
        raise UsageError(
            f"memory size {text!r} has no unit",
            hint=f"write e.g. {match.group(1)}GiB or {match.group(1)}MiB",
        )
    mib = number * (_UNIT_BYTES[unit] if unit else MIB_BYTES) / MIB_BYTES
    if mib > MAX_MIB:
        raise UsageError(
            f"memory size {text!r} is more than 1 PiB: no GPU has that much", hint=SIZE_HINT
        )
    if mib <= 0:
        raise UsageError(f"memory size {text!r}: a size must be more than 0", hint=SIZE_HINT)
    return math.ceil(mib - 1e-9)


def parse_duration_s(text: str) -> float:
    """``"30"`` / ``"30s"`` -> 30.0; ``"5m"`` -> 300.0; ``"2h"``; ``"1d"``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(
            f"cannot read duration {text!r}",
            hint="write seconds (30), or a number with s, m, h or d (90s, 5m, 2h, 1d)",
        )
    return float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
