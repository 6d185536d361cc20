"""A small client for the daemon's API: the socket by default, TCP with a token on request.

Why this module exists: CLI verbs that go through the daemon (``migctl token`` as an admin
today; ``migctl lease``/``run`` and CLI transparency later) must reach it the same way and turn
its error JSON back into the very ``MigctlError`` (and exit code) the local CLI would raise.
Default: the Unix socket (``--socket``, ``$MIGCTL_SOCKET``, see ``config.default_socket_path``);
with ``url`` (``$MIGCTL_URL``) TCP, with ``token`` (``$MIGCTL_TOKEN``) as a bearer token.

Anyone above the server may import it; it needs httpx (the ``server`` extra).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from migctl.errors import ALL_ERROR_CLASSES, InvalidStateError, MigctlError
from migctl.server.auth import AuthenticationError
from migctl.server.config import default_socket_path

URL_ENV = "MIGCTL_URL"
TOKEN_ENV = "MIGCTL_TOKEN"
_ERROR_CLASSES: tuple[type[MigctlError], ...] = (*ALL_ERROR_CLASSES, AuthenticationError)
_KINDS: dict[str, type[MigctlError]] = {cls.kind: cls for cls in _ERROR_CLASSES}
_FINISHED = {"succeeded", "failed", "interrupted"}


def error_from_body(body: object, status: int) -> MigctlError:
    """The migctl error a daemon response describes (its kind, message, hint, context)."""
    if not isinstance(body, dict) or "message" not in body:
        return MigctlError(f"the daemon answered HTTP {status} without a migctl error body")
    error_class = _KINDS.get(str(body.get("error")), MigctlError)
    context = body.get("context")
    return error_class(
        str(body["message"]),
        hint=None if body.get("hint") is None else str(body["hint"]),
        context=context if isinstance(context, dict) else None,
    )


class ServiceClient:
    """Requests to one daemon; raises ``MigctlError`` for every failure."""

    def __init__(
        self,
        *,
        socket_path: Path | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        url = url or os.environ.get(URL_ENV) or None
        token = token or os.environ.get(TOKEN_ENV) or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if url is not None:
            self.where = url
            self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)
        else:
            path = socket_path or default_socket_path()
            self.where = f"unix:{path}"
            transport = httpx.HTTPTransport(uds=str(path))
            self._http = httpx.Client(
                transport=transport, base_url="http://migctl", headers=headers, timeout=timeout_s
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The decoded JSON of a successful response; a migctl error otherwise."""
        try:
            response = self._http.request(
                method,
                path,
                json=body,
                params=params,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise InvalidStateError(
                f"cannot reach the migctl daemon at {self.where}: {exc}",
                hint="start it (`systemctl start migctl` or `migctl serve`), or point "
                "--socket / MIGCTL_SOCKET / MIGCTL_URL at it",
                context={"where": self.where},
            ) from exc
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            raise error_from_body(decoded, response.status_code)
        return decoded

    def reachable(self) -> bool:
        """Whether a daemon answers ``/v1/health`` here (never raises)."""
        try:
            return self._http.get("/v1/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_job(self, job_id: int, *, timeout_s: float = 600.0, poll_s: float = 0.2) -> Any:
        """Poll ``/v1/jobs/{id}`` until it finishes; its final JSON."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.request("GET", f"/v1/jobs/{job_id}")
            if job["status"] in _FINISHED or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect_if_running(socket_path: Path | None = None) -> ServiceClient | None:
    """A client for the local daemon when one answers on its socket, else None.

    For CLI verbs that go through the daemon when there is one (CLI transparency) and work
    locally otherwise. ``MIGCTL_URL``/``MIGCTL_TOKEN`` are honoured like in the constructor.
    """
    path = socket_path or default_socket_path()
    if not os.environ.get(URL_ENV) and not path.exists():
        return None
    client = ServiceClient(socket_path=path)
    if client.reachable():
        return client
    client.close()
    return None
