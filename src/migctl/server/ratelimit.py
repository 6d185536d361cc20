"""Per-principal request rate limits: one token bucket per caller, 429 with ``Retry-After``.

Why this module exists: every local user may call the daemon, and each request costs it work
(a read of the machine under the GPU lock, a plan, an audit row). One user's loop must not slow
everyone else down or churn the audit log. Every request but ``/v1/health`` takes a token from
its caller's bucket (``--rate-limit RATE[:BURST]`` for users, ``--admin-rate-limit`` for
admins, ``unlimited`` for none); an empty bucket answers 429 ``rate_limited`` (exit code 5) with
``Retry-After``, before the body is read and before anything is audited, so refused requests
cost almost nothing and cannot fill the audit log (they are logged, at most once a minute per
caller, with how many were refused).

The caller is who the API will see (the same rules as ``auth``): a token's principal (bucket
per token), else the socket peer's uid, else ``anonymous`` (TCP without a valid token). The
principal found here is handed on to the ``caller`` dependency, so a token is checked once.

Only ``migctl.server.app`` imports this module.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from migctl.errors import MigctlError, RateLimitedError
from migctl.server.audit import ASGIApp, Receive, Scope, Send
from migctl.server.auth import Principal, user_name
from migctl.server.config import Rate
from migctl.server.peercred import peer_of
from migctl.server.quietlog import QuietLog
from migctl.server.service import Service

log = logging.getLogger(__name__)
IDENTIFIED_KEY = "migctl_identified"  # scope state: the principal found before routing
EXEMPT_PATHS = frozenset({"/v1/health"})
MAX_BUCKETS = 10_000


class Buckets:
    """Token buckets by key; :meth:`take` says how long to wait when one is empty."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str, rate: Rate) -> float:
        """0.0 when a token was taken, else the seconds until one is there."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (rate.burst, now))
        tokens = min(rate.burst, tokens + (now - then) * rate.per_second)
        if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
            self._buckets.clear()  # full buckets only cost memory; a new one starts full
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate.per_second


async def identify(service: Service, scope: Scope) -> Principal | None:
    """The request's principal by the API's rules, or None when it has none (yet)."""
    peer = peer_of(scope)
    authorization = next(
        (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None
    )
    try:
        if authorization is None:
            return service.authenticate(peer, None) if peer is not None else None
        return await service.blocking.state(service.authenticate, peer, authorization)
    except MigctlError:
        return None  # the route's own check answers 401 / 403


class RateLimit:
    """ASGI middleware applying the buckets (see the module docstring)."""

    def __init__(self, app: ASGIApp, service: Service | None) -> None:
        self.app = app
        self.service = service
        self.buckets = Buckets()
        self._quiet = QuietLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        if service is None or scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        principal = await identify(service, scope)
        scope.setdefault("state", {})[IDENTIFIED_KEY] = principal
        key, who = self._caller(scope, principal)
        admin = principal is not None and principal.is_admin
        rate = service.config.admin_rate_limit if admin else service.config.rate_limit
        wait_s = 0.0 if rate is None else self.buckets.take(key, rate)
        if wait_s <= 0:
            await self.app(scope, receive, send)
            return
        assert rate is not None
        self._quiet.warn(key, f"rate limit: refused a request of {who}")
        await _refuse(send, _limited(who, rate, wait_s), wait_s)

    @staticmethod
    def _caller(scope: Scope, principal: Principal | None) -> tuple[str, str]:
        if principal is not None and principal.token_id is not None:
            return f"token:{principal.token_id}", principal.describe()
        if principal is not None:
            return f"uid:{principal.uid}", principal.describe()
        peer = peer_of(scope)
        if peer is not None:
            return f"uid:{peer.uid}", f"{user_name(peer.uid)} (uid {peer.uid}, socket)"
        return "anonymous", "anonymous TCP clients"


def _limited(who: str, rate: Rate, wait_s: float) -> RateLimitedError:
    return RateLimitedError(
        f"too many requests from {who}: at most {rate.describe()}; try again in {wait_s:.1f} s",
        hint="slow down (the migctl CLI waits and retries by itself); the daemon's admin sets "
        "the limits with `migctl serve --rate-limit` / `--admin-rate-limit`",
        context={
            "retry_after_s": round(wait_s, 3),
            "per_second": rate.per_second,
            "burst": rate.burst,
        },
    )


async def _refuse(send: Send, error: RateLimitedError, wait_s: float) -> None:
    payload = json.dumps(error.to_dict()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"retry-after", str(max(1, math.ceil(wait_s))).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
