"""Refuse request bodies above a size cap (413) before they reach a handler.

Why this module exists: every API body is a small JSON document; a client that sends megabytes
(by mistake or to exhaust the daemon's memory) must get a clear 413 and change nothing. A
declared ``Content-Length`` over the cap is refused before any byte is read; a chunked body is
counted as it arrives and refused as soon as it passes the cap. Both give the same answer: one
:class:`~migctl.server.http_errors.BodyTooLargeError` body (``invalid_input``, exit code 11).

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import json

from migctl.server.audit import ASGIApp, Message, Receive, Scope, Send
from migctl.server.http_errors import BodyTooLargeError, CarriedError, status_for


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI wraps other exceptions raised while it reads a body in a 400
                    raise CarriedError(BodyTooLargeError(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        error = BodyTooLargeError(self.max_bytes)
        payload = json.dumps(error.to_dict()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status_for(error), "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
