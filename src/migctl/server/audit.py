"""The audit log: every request that could change something, who sent it and how it ended.

Why this module exists: on a shared GPU server "who changed the layout / revoked my lease /
created that token, and did it work?" must always have an answer. :class:`AuditMiddleware`
wraps the whole app, so every POST/PUT/PATCH/DELETE is recorded — refused ones (401, 403, 4xx)
included — and the row is committed *before* the last byte of the response is sent: a client
that saw a result can always find it in the log. Handlers add what they know (``action``,
``target``, ``detail``) with :func:`note`; the caller's identity comes from the auth dependency.
Secrets never enter ``detail`` (handlers pass summaries, not bodies: a request body is kept as
its digest, see ``audit_detail``), and no row grows beyond a few KiB. The log is bounded: with a
:class:`Retention` (the daemon's ``--audit-max-rows`` / ``--audit-max-age-days``) the oldest
rows are deleted as new ones arrive, so a stream of requests cannot fill the disk.

Only ``migctl.server`` imports this module; it imports the state database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from migctl.server.audit_detail import bounded, bounded_detail
from migctl.server.auth import Principal, user_name
from migctl.server.peercred import PeerCred, peer_of
from migctl.server.statedb import StateDB

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDIT_KEY = "migctl_audit"
PRINCIPAL_KEY = "migctl_principal"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: int
    at: float
    actor: str
    role: str | None
    via: str
    method: str
    path: str
    action: str
    target: str | None
    status: int
    result: str  # "ok" (status < 400) or "error"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditNote:
    """What a handler tells the log about the request it served."""

    action: str | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def note(request: Request, action: str, target: object = None, /, **detail: Any) -> None:
    """Name the action and target of this request in its audit row (detail: JSON values)."""
    state = request.scope.setdefault("state", {})
    state[AUDIT_KEY] = AuditNote(action, None if target is None else str(target), dict(detail))


def add_detail(request: Request, /, **detail: Any) -> None:
    state = request.scope.setdefault("state", {})
    current = state.get(AUDIT_KEY)
    if isinstance(current, AuditNote):
        current.detail.update(detail)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much audit log the daemon keeps: the newest ``max_rows`` rows, none older than
    ``max_age_s`` (None: no such bound). Older rows are deleted as new ones arrive."""

    max_rows: int | None = 100_000
    max_age_s: float | None = 90 * 86400.0

    @property
    def prune_every(self) -> int:
        """Prune after this many new rows (so the log holds at most max_rows + this)."""
        return max(1, min(500, (self.max_rows or 5000) // 10))


class AuditLog:
    """Rows of the ``audit`` table; with a :class:`Retention`, the oldest ones are pruned."""

    def __init__(self, db: StateDB, retention: Retention | None = None) -> None:
        self._db = db
        self.retention = retention

    def record(
        self,
        *,
        actor: str,
        role: str | None,
        via: str,
        method: str,
        path: str,
        action: str,
        target: str | None,
        status: int,
        detail: dict[str, Any] | None = None,
    ) -> None:
        result = "ok" if status < 400 else "error"
        text = bounded_detail(detail or {})
        fields = (
            bounded(actor),
            role,
            via,
            method,
            bounded(path),
            bounded(action),
            bounded(target),
        )
        with self._db.write() as conn:
            cursor = conn.execute(
                "INSERT INTO audit (at, actor, role, via, method, path, action, target, status,"
                " result, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), *fields, status, result, text),
            )
            retention = self.retention
            if retention is not None and (cursor.lastrowid or 0) % retention.prune_every == 0:
                self._prune_in(conn, retention)

    def prune(self) -> int:
        """Delete the rows the retention no longer keeps; how many (0 without a retention)."""
        if self.retention is None:
            return 0
        with self._db.write() as conn:
            return self._prune_in(conn, self.retention)

    @staticmethod
    def _prune_in(conn: sqlite3.Connection, retention: Retention) -> int:
        deleted = 0
        if retention.max_age_s is not None:
            cutoff = time.time() - retention.max_age_s
            deleted += conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,)).rowcount
        if retention.max_rows is not None:
            newest = conn.execute("SELECT MAX(audit_id) FROM audit").fetchone()[0] or 0
            last_dropped = newest - retention.max_rows
            deleted += conn.execute(
                "DELETE FROM audit WHERE audit_id <= ?", (last_dropped,)
            ).rowcount
        if deleted:
            log.info("audit log: pruned %d row(s) beyond its retention", deleted)
        return deleted

    def entries(
        self, *, limit: int = 100, before_id: int | None = None, actor: str | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        conditions: list[str] = ["1"]
        params: list[object] = []
        if before_id is not None:
            conditions.append("audit_id < ?")
            params.append(before_id)
        if actor is not None:
            conditions.append("actor = ?")
            params.append(actor)
        rows = self._db.read(
            f"SELECT * FROM audit WHERE {' AND '.join(conditions)} ORDER BY audit_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_entry(row) for row in rows]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        audit_id=row["audit_id"],
        at=row["at"],
        actor=row["actor"],
        role=row["role"],
        via=row["via"],
        method=row["method"],
        path=row["path"],
        action=row["action"],
        target=row["target"],
        status=row["status"],
        result=row["result"],
        detail=json.loads(row["detail"]),
    )


def _actor(who: Principal | None, peer: PeerCred | None) -> str:
    """Who sent a request; one refused before authentication (bad JSON, too large) on the
    socket is still named by the kernel."""
    if who is not None:
        return who.name
    return user_name(peer.uid) if peer is not None else "anonymous"


class AuditMiddleware:
    """Record every mutating request (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, log: AuditLog | None, executor: Executor | None = None
    ) -> None:
        self.app = app
        self.log = log
        self.executor = executor  # where rows are written (None: the loop's default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING or self.log is None:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status = 500
        recorded = False

        async def audited_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                recorded = True
                await self._record(scope, state, status)
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        finally:
            if not recorded:
                await self._record(scope, state, status)

    async def _record(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        assert self.log is not None
        principal = state.get(PRINCIPAL_KEY)
        noted = state.get(AUDIT_KEY)
        noted = noted if isinstance(noted, AuditNote) else AuditNote()
        who = principal if isinstance(principal, Principal) else None
        peer = peer_of(scope)
        record = {
            "actor": _actor(who, peer),
            "role": str(who.role) if who else None,
            "via": who.via if who else ("socket" if peer is not None else "tcp"),
            "method": scope["method"],
            "path": scope["path"],
            "action": noted.action or f"{scope['method']} {scope['path']}",
            "target": noted.target,
            "status": status,
            "detail": {
                **noted.detail,
                **({"token": who.token_name} if who and who.token_name else {}),
            },
        }
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.executor, lambda: self.log.record(**record) if self.log else None
        )
