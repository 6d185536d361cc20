"""What a replay measured: per-request outcomes, busy slices over time, and the summary numbers.

Why this exists: the benchmark compares policies by acceptance (served within the maximum
wait), waiting time (mean, p95), slice utilisation (time-weighted share of memory slices held
by a running request) and reconfigurations; the definitions live here, once. Utilisation is
averaged over the arrival window (first to last arrival), so the drain after the last arrival
does not dilute it. Imported by ``migctl.repartition.replay`` and ``bench/``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One request's fate in a replay."""

    request_id: str
    arrival_s: float
    started_at: float | None = None  # when its device became usable
    gave_up_at: float | None = None
    slices: int | None = None  # memory slices of the instance it got
    profile: str | None = None

    @property
    def served(self) -> bool:
        return self.started_at is not None

    @property
    def wait_s(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.arrival_s


@dataclass
class Timeline:
    """Busy memory slices as a step function of time."""

    total_slices: int
    times: list[float] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    _prefix: list[float] = field(default_factory=list, repr=False)

    def record(self, now: float, busy_slices: int) -> None:
        if self.times and self.times[-1] == now:
            self.busy[-1] = busy_slices
        elif not self.busy or self.busy[-1] != busy_slices:
            self.times.append(now)
            self.busy.append(busy_slices)

    def area_until(self, when: float) -> float:
        """Integral of busy slices from the first record to ``when`` (slice-seconds)."""
        if len(self._prefix) != len(self.times):
            self._prefix = [0.0]
            for index in range(1, len(self.times)):
                step = self.times[index] - self.times[index - 1]
                self._prefix.append(self._prefix[-1] + self.busy[index - 1] * step)
        position = bisect.bisect_right(self.times, when) - 1
        if position < 0:
            return 0.0
        return self._prefix[position] + self.busy[position] * (when - self.times[position])

    def mean_fraction(self, start: float, end: float) -> float:
        """Time-weighted busy share of all slices over ``[start, end]``."""
        if end <= start or not self.total_slices:
            return 0.0
        area = self.area_until(end) - self.area_until(start)
        return area / (self.total_slices * (end - start))

    def binned(self, start: float, end: float, bins: int) -> list[tuple[float, float]]:
        """(bin midpoint, busy share) for ``bins`` equal bins of ``[start, end]``."""
        width = (end - start) / bins if bins else 0.0
        if width <= 0:
            return []
        edges = [start + i * width for i in range(bins + 1)]
        return [
            ((low + high) / 2, self.mean_fraction(low, high))
            for low, high in itertools.pairwise(edges)
        ]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in [0, 1]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class ReplayResult:
    name: str
    outcomes: tuple[Outcome, ...]
    reshape_times_s: tuple[float, ...]
    destroyed_instances: int
    timeline: Timeline
    window_end_s: float
    decide_calls: int
    decide_seconds: float
    max_wait_seconds: float | None

    @property
    def reconfigurations(self) -> int:
        return len(self.reshape_times_s)

    @property
    def waits(self) -> list[float]:
        return [o.wait_s for o in self.outcomes if o.wait_s is not None]

    @property
    def acceptance(self) -> float:
        """Share of requests served (within the maximum wait: later ones gave up)."""
        if not self.outcomes:
            return 0.0
        return sum(1 for o in self.outcomes if o.served) / len(self.outcomes)

    @property
    def window_start_s(self) -> float:
        return min((o.arrival_s for o in self.outcomes), default=0.0)

    @property
    def utilisation(self) -> float:
        return self.timeline.mean_fraction(self.window_start_s, self.window_end_s)

    def summary(self) -> dict[str, object]:
        waits = self.waits
        return {
            "policy": self.name,
            "requests": len(self.outcomes),
            "served": len(waits),
            "acceptance": round(self.acceptance, 4),
            "mean_wait_s": round(sum(waits) / len(waits), 2) if waits else None,
            "p95_wait_s": round(percentile(waits, 0.95), 2) if waits else None,
            "utilisation": round(self.utilisation, 4),
            "reconfigurations": self.reconfigurations,
            "destroyed_instances": self.destroyed_instances,
            "decide_calls": self.decide_calls,
        }
