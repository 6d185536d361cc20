"""A small client for the daemon's API: the socket by default, TCP with a token on request.

Why this module exists: CLI verbs that go through the daemon (``migctl token`` as an admin;
every verb with a daemon form when the CLI works against the daemon, see ``migctl.cli.route``)
must reach it the same way and turn its error JSON back into the very ``MigctlError`` (and exit
code) the local CLI would raise. Default: the Unix socket (``--socket``, ``$MIGCTL_SOCKET``,
else the first of ``config.candidate_sockets`` that exists; :func:`probe_socket` says clearly
why one that exists cannot be used); with ``url`` (``$MIGCTL_URL``) ``unix:///path/to.sock`` (a
socket) or ``http://host:port`` (TCP), with ``token`` (``$MIGCTL_TOKEN``) as a bearer token.

Anyone above the server may import it; it needs httpx (the ``server`` extra).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from migctl.errors import (
    ALL_ERROR_CLASSES,
    InternalError,
    InvalidStateError,
    MigctlError,
    PermissionDeniedError,
    UsageError,
)
from migctl.server.config import client_socket_path

URL_ENV = "MIGCTL_URL"
TOKEN_ENV = "MIGCTL_TOKEN"
UNIX_SCHEME = "unix:"
_FINISHED = {"succeeded", "failed", "interrupted"}
PROBE_TIMEOUT_S = 5.0  # a daemon found on a socket must answer /v1/health within this
RATE_LIMIT_PATIENCE_S = 30.0  # how long a rate-limited request is retried before failing


DaemonInternalError = InternalError  # a bug inside the daemon (HTTP 500 ``internal``): exit 70


def _error_classes() -> dict[str, type[MigctlError]]:
    return {cls.kind: cls for cls in ALL_ERROR_CLASSES}


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429 asks to wait (``Retry-After``), or None when it names none."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def socket_of_url(url: str) -> Path | None:
    """``unix:///run/migctl/migctl.sock`` (or ``unix:/path``) -> the path; None for http(s)."""
    if url.startswith(UNIX_SCHEME):
        path = url[len(UNIX_SCHEME) :].lstrip("/")
        if not path:
            raise UsageError(
                f"{url!r} names no socket", hint="e.g. MIGCTL_URL=unix:///run/migctl/migctl.sock"
            )
        return Path("/" + path)
    if url.startswith(("http://", "https://")):
        return None
    raise UsageError(
        f"cannot use the daemon address {url!r}",
        hint="use unix:///path/to/migctl.sock or http://HOST:PORT (with MIGCTL_TOKEN)",
    )


def error_from_body(body: object, status: int) -> MigctlError:
    """The migctl error a daemon response describes (its kind, message, hint, context)."""
    if not isinstance(body, dict) or "message" not in body:
        return MigctlError(
            f"the daemon answered HTTP {status} without a migctl error body",
            context={"http_status": status},
        )
    error_class = _error_classes().get(str(body.get("error")), MigctlError)
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
        if url is not None and (url_socket := socket_of_url(url)) is not None:
            url, socket_path = None, url_socket
        self.on_socket = url is None
        if url is not None:
            self.where = url
            self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)
        else:
            path = socket_path or client_socket_path(os.environ)
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
        response = self._send(
            method,
            path,
            json=body,
            params=params,
            timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            raise error_from_body(decoded, response.status_code)
        return decoded

    def request_text(self, path: str) -> str | None:
        """A plain-text GET (e.g. ``/metrics``); None when the daemon has no such route."""
        response = self._send("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                decoded = response.json()
            except ValueError:
                decoded = None
            raise error_from_body(decoded, response.status_code)
        return response.text

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request; a 429 (rate limited: refused before anything was done) is sent again
        after its ``Retry-After``, for up to :data:`RATE_LIMIT_PATIENCE_S` in all."""
        waited = 0.0
        while True:
            try:
                response = self._http.request(method, path, **options)
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
            if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
                return response
            pause = _retry_after(response)
            if pause is None or waited + pause > RATE_LIMIT_PATIENCE_S:
                return response
            time.sleep(pause)
            waited += pause

    def _unreachable(self, exc: httpx.HTTPError) -> MigctlError:
        return InvalidStateError(
            f"cannot reach the migctl daemon at {self.where}: {exc}",
            hint="start it (`systemctl start migctl` or `migctl serve`), point "
            "--socket / MIGCTL_SOCKET / MIGCTL_URL at it, or work without it: --local",
            context={"where": self.where},
        )

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


def probe_socket(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> ServiceClient:
    """A client for the daemon on the existing socket ``path``; a clear error when nobody (or
    nobody willing) answers there: never a silent "no daemon"."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(str(path))
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"cannot connect to the migctl daemon's socket {path}: permission denied",
                hint="the daemon makes it 0666 in a 0755 directory: ask an admin to check both; "
                "or use the GPUs directly on purpose: --local (MIGCTL_LOCAL=1)",
                context={"socket": str(path)},
            ) from exc
        except TimeoutError as exc:
            raise _silent(path, f"it did not accept a connection within {timeout_s:g} s") from exc
        except OSError as exc:
            raise _stale(path, exc.strerror or str(exc)) from exc
    client = ServiceClient(socket_path=path, timeout_s=timeout_s)
    try:
        response = client._http.get("/v1/health")
    except httpx.TimeoutException as exc:
        client.close()
        raise _silent(path, f"it did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        client.close()
        raise _stale(path, str(exc)) from exc
    if response.status_code == httpx.codes.OK:
        return client
    client.close()
    refusal = error_from_body(_json_or_none(response), response.status_code)
    raise InvalidStateError(
        f"the migctl daemon on {path} refused this client: HTTP {response.status_code}: "
        f"{refusal.message}",
        hint=refusal.hint or "see the daemon's log (journalctl -u migctl)",
        context={"socket": str(path), "http_status": response.status_code},
    )


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _stale(path: Path, reason: str) -> InvalidStateError:
    return InvalidStateError(
        f"a migctl daemon socket exists at {path}, but no daemon answers there ({reason}); "
        "migctl does not fall back to the GPUs behind the daemon's back (its leases would not "
        "be seen)",
        hint="start the daemon (systemctl start migctl); if none should run here, remove the "
        f"stale socket ({path}); or use the GPUs directly on purpose: --local (MIGCTL_LOCAL=1)",
        context={"socket": str(path)},
    )


def _silent(path: Path, what: str) -> InvalidStateError:
    return InvalidStateError(
        f"the migctl daemon on {path} is not answering: {what} (starting up, or overloaded)",
        hint="try again in a moment (journalctl -u migctl says what it is doing); or use the "
        "GPUs directly on purpose: --local (MIGCTL_LOCAL=1)",
        context={"socket": str(path)},
    )


def connect_if_running(socket_path: Path | None = None) -> ServiceClient | None:
    """A client for the local daemon when one answers on its socket, else None.

    For CLI verbs that go through the daemon when there is one (CLI transparency) and work
    locally otherwise. ``MIGCTL_URL``/``MIGCTL_TOKEN`` are honoured like in the constructor.
    """
    path = socket_path or client_socket_path(os.environ)
    if not os.environ.get(URL_ENV) and not path.exists():
        return None
    client = ServiceClient(socket_path=path)
    if client.reachable():
        return client
    client.close()
    return None
