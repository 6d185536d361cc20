"""Settings of one ``migctl serve`` daemon, and where its socket lives by default.

Why this module exists: the daemon, the CLI verbs that talk to it and the tests must agree on
the socket path and the daemon's limits. Where ``migctl serve`` listens by default:
``$MIGCTL_SOCKET``; else ``/run/migctl/migctl.sock`` for root; else
``$XDG_RUNTIME_DIR/migctl.sock``; else ``migctl.sock`` in the state directory. Where clients
look (:func:`candidate_sockets`): ``$MIGCTL_SOCKET`` alone when set; else the system socket
``/run/migctl/migctl.sock`` for everyone, then a non-root user's own socket. These rules take
the environment as an argument (the edge, ``migctl serve`` or the CLI, passes it): nothing here
reads ``os.environ`` for a path. Socket discovery is the client's business and moves to
``migctl.client`` with the CLI. The daemon's own files come from its
:class:`~migctl.settings.Settings` (``ServiceConfig.state_dir`` for ``service.db``; the node's
settings for the lease database and the journal). Demand-driven repartitioning is a
:class:`migctl.repartition.Policy` (``--repartition off|on`` and its limits, or the
``MIGCTL_REPARTITION*`` environment variables read by ``migctl serve``). Anyone may import it;
it imports only ``migctl.settings`` and errors (the repartition policy lazily: CLI verbs that
only look for the socket must start fast).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.errors import UsageError
from migctl.settings import Settings

if TYPE_CHECKING:
    from migctl.repartition import Policy

SOCKET_ENV = "MIGCTL_SOCKET"
REPARTITION_ENV = "MIGCTL_REPARTITION"
MAX_RECONFIG_ENV = "MIGCTL_MAX_RECONFIG_PER_HOUR"
MIN_IDLE_ENV = "MIGCTL_MIN_IDLE_SECONDS"
AGING_ENV = "MIGCTL_AGING_SECONDS"
RESERVE_AFTER_ENV = "MIGCTL_RESERVE_AFTER_SECONDS"
UNLIMITED = frozenset({"unlimited", "none", "off", "never"})
DEFAULT_ADMIN_GROUP = "migctl-admin"
SYSTEM_SOCKET = Path("/run/migctl/migctl.sock")
STATE_DB_NAME = "service.db"
MAX_BODY_BYTES = 1024 * 1024
SOCKET_MODE = 0o666
PROVISIONAL_ENV = "MIGCTL_PROVISIONAL_LEASE_SECONDS"
DEFAULT_PROVISIONAL_S = 60.0


def effective_uid() -> int:
    """Who runs this process (root's default socket differs); a function tests can replace."""
    return os.geteuid()


def default_socket_path(environ: Mapping[str, str], euid: int | None = None) -> Path:
    """Where ``migctl serve`` listens by default, by the rules in the module docstring."""
    explicit = environ.get(SOCKET_ENV)
    if explicit:
        return Path(explicit).expanduser()
    uid = effective_uid() if euid is None else euid
    if uid == 0:
        return SYSTEM_SOCKET
    return user_socket_path(environ, uid)


def user_socket_path(environ: Mapping[str, str], euid: int | None = None) -> Path:
    """A non-root user's own daemon socket: ``$XDG_RUNTIME_DIR/migctl.sock``, else one in the
    state directory (``Settings.from_env(environ).state_dir``)."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime) / "migctl.sock"
    uid = effective_uid() if euid is None else euid
    return Settings.from_env(environ, euid=uid).state_dir / "migctl.sock"


def candidate_sockets(environ: Mapping[str, str], euid: int | None = None) -> list[Path]:
    """Where a client looks for a daemon, in order: ``$MIGCTL_SOCKET`` alone when set; else the
    system daemon's socket (for every user), then, for others than root, their own."""
    explicit = environ.get(SOCKET_ENV)
    if explicit:
        return [Path(explicit).expanduser()]
    uid = effective_uid() if euid is None else euid
    if uid == 0:
        return [SYSTEM_SOCKET]
    return [SYSTEM_SOCKET, user_socket_path(environ, uid)]


def client_socket_path(environ: Mapping[str, str]) -> Path:
    """The socket a client talks to when none is named: the first candidate that exists."""
    candidates = candidate_sockets(environ)
    return first_existing(candidates) or candidates[0]


def first_existing(paths: list[Path]) -> Path | None:
    """The first of ``paths`` that exists (or cannot even be looked at: someone made it)."""
    for path in paths:
        try:
            if path.exists():
                return path
        except OSError:
            return path
    return None


def default_provisional_lease_s() -> float:
    """How long a lease lasts before its answer is confirmed delivered (``server.provisional``):
    ``MIGCTL_PROVISIONAL_LEASE_SECONDS``, default 60."""
    text = os.environ.get(PROVISIONAL_ENV)
    value = parse_limit(text, PROVISIONAL_ENV) if text else None
    return DEFAULT_PROVISIONAL_S if value is None or value <= 0 else value


def parse_limit(text: str, option: str) -> float | None:
    """A non-negative number, or None for ``unlimited``/``off``/``never``/``none``."""
    cleaned = text.strip().lower()
    if cleaned in UNLIMITED:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(
            f"{option} {text!r} is not a number >= 0",
            hint=f"e.g. {option} 12, or {option} unlimited",
        )
    return value


def repartition_policy(
    mode: str = "off",
    *,
    max_reconfig_per_hour: str = "12",
    min_idle_seconds: str = "300",
    aging_seconds: str = "600",
    reserve_after_seconds: str = "300",
) -> Policy:
    """The daemon's repartitioning policy from ``migctl serve`` option texts (see docs)."""
    from migctl.repartition import Policy

    if mode not in {"off", "on"}:
        raise UsageError(f"--repartition {mode!r} is not off or on", hint="--repartition on")
    budget = parse_limit(max_reconfig_per_hour, "--max-reconfig-per-hour")
    if budget is not None and budget != int(budget):
        raise UsageError(
            f"--max-reconfig-per-hour {max_reconfig_per_hour!r} is not a whole number",
            hint="e.g. --max-reconfig-per-hour 12",
        )
    return Policy(
        mode="on" if mode == "on" else "off",
        max_reconfigurations_per_hour=None if budget is None else int(budget),
        min_idle_seconds=_required(min_idle_seconds, "--min-idle-seconds"),
        aging_seconds=parse_limit(aging_seconds, "--aging-seconds") or 0.0,
        reserve_after_seconds=parse_limit(reserve_after_seconds, "--reserve-after-seconds"),
    )


def default_policy() -> Policy:
    """Repartitioning off (the library's default limits)."""
    from migctl.repartition import Policy

    return Policy()


def _required(text: str, option: str) -> float:
    value = parse_limit(text, option)
    if value is None:
        raise UsageError(f"{option} needs a number of seconds", hint=f"e.g. {option} 300")
    return value


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float
    burst: float

    def describe(self) -> str:
        return f"{self.per_second:g} per second (bursts of {self.burst:g})"


def parse_rate(text: str, option: str) -> Rate | None:
    """``RATE`` or ``RATE:BURST`` (requests per second, bucket size; default burst 10 x RATE,
    at least 1), or ``unlimited`` (None)."""
    refusal = UsageError(
        f"{option} {text!r} is not RATE[:BURST] with RATE > 0 and BURST >= 1",
        hint=f"e.g. {option} 10:100 (10 requests per second, bursts of 100), or unlimited",
    )
    rate_text, _, burst_text = text.strip().partition(":")
    try:
        rate = parse_limit(rate_text, option)
        if rate is None:
            return None
        burst = parse_limit(burst_text, option) if burst_text else max(1.0, 10 * rate)
    except UsageError:
        raise refusal from None
    if rate <= 0 or burst is None or burst < 1:
        raise refusal
    return Rate(rate, burst)


def audit_retention(max_rows: str, max_age_days: str) -> tuple[int | None, float | None]:
    """``(audit_max_rows, audit_max_age_s)`` of a config from ``migctl serve`` option texts."""
    rows = parse_limit(max_rows, "--audit-max-rows")
    if rows is not None and (rows != int(rows) or rows < 1):
        raise UsageError(
            f"--audit-max-rows {max_rows!r} is not a whole number >= 1",
            hint="e.g. --audit-max-rows 100000, or unlimited",
        )
    days = parse_limit(max_age_days, "--audit-max-age-days")
    if days is not None and days <= 0:
        raise UsageError(
            f"--audit-max-age-days {max_age_days!r} is not > 0",
            hint="e.g. --audit-max-age-days 90, or unlimited",
        )
    return (None if rows is None else int(rows)), (None if days is None else days * 86400.0)


def parse_host_port(text: str) -> tuple[str, int]:
    """``127.0.0.1:8470`` / ``[::1]:8470`` / ``:8470`` (loopback) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(
            f"--tcp {text!r} is not HOST:PORT", hint="e.g. --tcp 127.0.0.1:8470 (port 0-65535)"
        )
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


DEFAULT_USER_RATE = Rate(10.0, 100.0)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connection budgets and request deadlines (see ``server.connections``, ``protocol``)."""

    header_timeout_s: float = 10.0  # from a connection's start (or a request's first byte)
    body_timeout_s: float = 30.0  # from a request's head to its last body byte
    per_user: int = 64  # socket connections of one non-admin user
    users: int = 1024  # socket connections of all non-admin users together
    tcp: int = 256  # TCP connections
    admins: int = 128  # socket connections of admins: a budget of their own

    @property
    def total(self) -> int:
        return self.users + self.tcp + self.admins


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a daemon needs to know before it opens its listeners (its GPUs, lease
    database and journal: the daemon's :class:`~migctl.settings.Settings`)."""

    socket_path: Path
    state_dir: Path  # the daemon's own database, service.db
    tcp: tuple[str, int] | None = None
    admin_group: str = DEFAULT_ADMIN_GROUP
    max_body_bytes: int = MAX_BODY_BYTES
    device_cache_s: float = 2.0  # how stale the MIG device list used for leasing may be
    wait_poll_s: float = 5.0  # a waiting acquire retries at least this often (fallback)
    reap_every_s: float = 1.0  # end expired and dead-holder leases, waking their waiters
    io_threads: int = 32
    socket_mode: int = SOCKET_MODE
    metrics_public: bool = False  # anonymous TCP clients may read /metrics
    repartition: Policy = field(
        default_factory=default_policy
    )  # demand-driven repartitioning (off)
    repartition_every_s: float = 5.0  # the repartitioning loop also runs on this timer
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    rate_limit: Rate | None = DEFAULT_USER_RATE  # per user principal (None: unlimited)
    admin_rate_limit: Rate | None = None  # per admin principal (None: unlimited)
    provisional_lease_s: float = field(default_factory=default_provisional_lease_s)
    audit_max_rows: int | None = 100_000  # the audit log keeps the newest rows (None: all)
    audit_max_age_s: float | None = 90 * 86400.0  # ... and none older than this (None: any)
    notify_socket: str | None = None  # systemd's $NOTIFY_SOCKET (Type=notify), read by the edge

    @property
    def state_db(self) -> Path:
        return self.state_dir / STATE_DB_NAME

    def listeners(self) -> list[str]:
        """``unix:/run/migctl/migctl.sock``, ``http://127.0.0.1:8470``: for status and logs."""
        found = [f"unix:{self.socket_path}"]
        if self.tcp is not None:
            found.append(f"http://{self.tcp[0]}:{self.tcp[1]}")
        return found
