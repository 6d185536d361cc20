"""How many connections each caller may hold open, within what the process can hold.

Why this module exists: every open connection costs the daemon a file descriptor. Without a
bound, a local user opening a thousand connections (each sending half a request, never the
rest) locked every user out, root's socket included, and filled the log with "Too many open
files" from the accept loop. Budgets, decided when a connection is accepted:

* a non-admin user on the socket (by uid): at most ``per_user`` connections;
* all non-admin socket users together: at most ``users``;
* TCP (anyone, tokens or none): at most ``tcp``, a budget of its own;
* admins on the socket (root, the admin group): ``admins``, a budget no user or TCP client can
  touch, so an admin can always get in to see and fix things.

A connection over its budget is answered at once (429 ``rate_limited`` for one user's budget,
503 ``insufficient_resources`` for the shared ones, ``Retry-After: 1``) and closed. The budgets
are fitted to the process's file descriptor limit (raised to its hard limit first, and
``LimitNOFILE`` in the unit file), keeping a reserve for the daemon's own files. How long a
request may take to arrive is bounded by the protocol (``server.protocol``). Only
``migctl.server`` imports this module.
"""

from __future__ import annotations

import http
import json
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from migctl.errors import InsufficientResourcesError, MigctlError, RateLimitedError
from migctl.server.auth import user_name
from migctl.server.config import ConnectionLimits
from migctl.server.peercred import PeerCred
from migctl.server.secure_headers import API_HEADERS

log = logging.getLogger(__name__)
FD_RESERVE = 256  # descriptors kept for the databases, NVML, threads, the listeners


def fit_to_descriptors(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` within this process's descriptor limit (soft raised to hard first): the
    users' and TCP budgets shrink, the admins' never does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limits.total + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(hard, want)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open file limit to %d: %s", target, error)
    return shrink(limits, soft)


def shrink(limits: ConnectionLimits, descriptors: int) -> ConnectionLimits:
    """``limits`` with users' and TCP budgets cut in proportion to fit ``descriptors``."""
    room = descriptors - FD_RESERVE - limits.admins
    shared = limits.users + limits.tcp
    if room >= shared:
        return limits
    share = max(room, 2) / shared
    fitted = replace(
        limits,
        users=max(1, int(limits.users * share)),
        tcp=max(1, int(limits.tcp * share)),
        per_user=max(1, min(limits.per_user, int(limits.users * share))),
    )
    log.warning(
        "open file limit %d: connection budgets cut to %d for users (%d each), %d for TCP, "
        "%d for admins; raise LimitNOFILE to keep them",
        descriptors, fitted.users, fitted.per_user, fitted.tcp, fitted.admins,
    )  # fmt: skip
    return fitted


@dataclass(frozen=True, slots=True)
class Slot:
    """A connection's place in a budget, given back when it closes."""

    budget: str  # "admins", "tcp" or "users"
    uid: int | None  # a user's uid (users budget only)


class ConnectionBudget:
    """Counts open connections per budget (on the event loop only: no locking)."""

    def __init__(self, limits: ConnectionLimits, is_admin: Callable[[PeerCred], bool]) -> None:
        self.limits = limits
        self._is_admin = is_admin
        self.open: Counter[str] = Counter()
        self.by_uid: Counter[int] = Counter()

    def admit(self, peer: PeerCred | None) -> Slot | MigctlError:
        """A slot for a new connection from ``peer`` (None: TCP), or why there is none."""
        limits = self.limits
        if peer is None:
            return self._take("tcp", None, limits.tcp)
        if self._is_admin(peer):
            return self._take("admins", None, limits.admins)
        if self.by_uid[peer.uid] >= limits.per_user:
            name = user_name(peer.uid)
            return RateLimitedError(
                f"too many connections from {name} (uid {peer.uid}): at most "
                f"{limits.per_user} at once",
                hint="close some (or wait for them to end); the daemon's admin sets the limit "
                "with `migctl serve --max-user-connections`",
                context={"limit": limits.per_user},
            )
        found = self._take("users", peer.uid, limits.users)
        if isinstance(found, Slot):
            self.by_uid[peer.uid] += 1
        return found

    def _take(self, budget: str, uid: int | None, limit: int) -> Slot | MigctlError:
        if self.open[budget] >= limit:
            return InsufficientResourcesError(
                f"the daemon holds as many connections as it allows ({limit} for {budget}); "
                "try again in a moment",
                hint="see `migctl serve --max-connections / --max-tcp-connections / "
                "--admin-connections`",
                context={"budget": budget, "limit": limit},
            )
        self.open[budget] += 1
        return Slot(budget, uid)

    def release(self, slot: Slot) -> None:
        self.open[slot.budget] -= 1
        if slot.uid is not None:
            self.by_uid[slot.uid] -= 1
            if self.by_uid[slot.uid] <= 0:
                del self.by_uid[slot.uid]


def refusal_bytes(error: MigctlError) -> bytes:
    """A whole HTTP response refusing a connection (written before any request is read)."""
    status = 429 if isinstance(error, RateLimitedError) else 503
    body = json.dumps(error.to_dict()).encode()
    head = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        "retry-after: 1",
        *(f"{name.decode()}: {value.decode()}" for name, value in API_HEADERS),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
