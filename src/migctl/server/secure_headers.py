"""Security headers on every response: a strict Content-Security-Policy unless a route set one.

Why this module exists: the dashboard keeps a bearer token in its origin (the daemon's address),
so nothing the daemon serves there may load code from elsewhere or be framed by another site.
The dashboard's own files carry their policy (``routes_dashboard.SECURITY_HEADERS``: only this
origin's script, style and fetch); every other response (JSON, errors, ``/metrics``) gets
:data:`API_HEADERS`, which allow nothing at all, so that no answer of the daemon can ever run
script in that origin. There are no interactive API docs (swagger-ui would come from a CDN):
the schema is ``/v1/openapi.json``. Only ``migctl.server.app`` imports this module.
"""

from __future__ import annotations

from migctl.server.audit import ASGIApp, Message, Receive, Scope, Send

API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecureHeaders:
    """ASGI middleware: add each of :data:`API_HEADERS` that a response does not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(h for h in API_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)
