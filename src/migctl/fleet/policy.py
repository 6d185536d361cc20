"""The fleet controller's policy: cycle, deadlines and reshape budgets, checked once.

Why this exists: how fast the controller acts, how long it waits for a drain, how long a
pending reshape counts as supply, and how many reshapes it may have in flight or start
per hour (per host and fleet-wide) are the operator's choices; a bad value must be
refused with a clear message before the controller starts. ``Budget`` counts reshapes in
a sliding hour. Pure; imported by ``fleet.controller``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from migctl.errors import InvalidInputError

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class Policy:
    cycle_s: float = 2.0  # time between decision cycles
    drain_deadline_s: float = 120.0  # wait this long for running tasks, then abort the drain
    pending_deadline_s: float = 180.0  # a pending reshape counts as supply this long
    retire_timeout_s: float = 60.0  # one retire_workers call (moving results off) at most
    stop_grace_s: float = 10.0  # SIGTERM to SIGKILL for a worker's process group
    plan_time_limit_s: float = 5.0
    retry_backoff_s: float = 10.0  # a GPU whose reshape failed is left alone this long
    restart_backoff_s: float = 10.0  # a device whose worker failed or died waits this long
    per_host_in_flight: int = 1  # reshapes in progress on one host
    fleet_in_flight: int = 16
    per_host_per_hour: int = 60
    fleet_per_hour: int = 1000

    @classmethod
    def parse(cls, settings: Sequence[str]) -> Policy:
        """A policy from ``NAME=VALUE`` texts (``cycle_s=1``); the rest default."""
        known = {item.name: item for item in fields(cls)}
        values: dict[str, float] = {}
        for text in settings:
            name, sep, raw = text.partition("=")
            if not sep or name.strip() not in known:
                raise InvalidInputError(
                    f"fleet policy setting {text!r} is not NAME=VALUE with a known NAME",
                    hint="names: " + ", ".join(sorted(known)),
                )
            try:
                number = float(raw)
            except ValueError:
                raise InvalidInputError(
                    f"fleet policy {name} must be a number, not {raw!r}",
                    hint=f"e.g. {name}={getattr(cls, name, 1)}",
                ) from None
            values[name.strip()] = (
                int(number) if known[name.strip()].type in (int, "int") else number
            )
        return cls(**values)  # type: ignore[arg-type]

    def settings(self) -> list[str]:
        """The ``NAME=VALUE`` texts of the settings that differ from the defaults."""
        default = type(self)()
        return [
            f"{item.name}={getattr(self, item.name)}"
            for item in fields(self)
            if getattr(self, item.name) != getattr(default, item.name)
        ]

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not value > 0 or value > 10**6:
                raise InvalidInputError(
                    f"fleet policy {item.name} must be a positive number up to 1e6, not {value!r}",
                    hint=f"e.g. {item.name}={item.default}",
                    context={"setting": item.name},
                )


@dataclass
class Budget:
    """Reshapes started in the last hour, per host and in all."""

    policy: Policy
    started: dict[str, deque[float]] = field(default_factory=dict)

    def _trim(self, now: float) -> None:
        for times in self.started.values():
            while times and times[0] <= now - HOUR_S:
                times.popleft()

    def refusal(self, host: str, now: float, in_flight: dict[str, int]) -> str | None:
        """Why a reshape on ``host`` may not start now; None if it may."""
        self._trim(now)
        if in_flight.get(host, 0) >= self.policy.per_host_in_flight:
            return f"{host} already has {in_flight[host]} reshape(s) in flight"
        if sum(in_flight.values()) >= self.policy.fleet_in_flight:
            return f"the fleet already has {sum(in_flight.values())} reshapes in flight"
        if len(self.started.get(host, ())) >= self.policy.per_host_per_hour:
            return f"{host} used its {self.policy.per_host_per_hour} reshapes this hour"
        if sum(len(t) for t in self.started.values()) >= self.policy.fleet_per_hour:
            return f"the fleet used its {self.policy.fleet_per_hour} reshapes this hour"
        return None

    def record(self, host: str, now: float) -> None:
        self.started.setdefault(host, deque()).append(now)
