"""One daemon's REST API over its Unix socket or TCP (with a bearer token).

Why this module exists: every request to a daemon goes through :class:`DaemonClient`, which turns
transport failures and error bodies into :mod:`migctl.errors` classes (same kind, message, hint,
context and exit code as the daemon raised) and polls jobs to their end. Addresses:
``unix:///path/to.sock`` or a socket path, or ``http(s)://host:port``. Nothing here reads the
environment: ``migctl.node.open.connect`` passes what :class:`~migctl.settings.Settings` found.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from migctl.errors import InvalidStateError, MigctlError, UsageError
from migctl.schemas.errors import ErrorOut

UNIX_SCHEME = "unix:"
FINISHED = frozenset({"succeeded", "failed", "interrupted"})
RATE_LIMIT_PATIENCE_S = 30.0  # how long a rate-limited request is retried before failing


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
    """The migctl error a daemon response describes; a bodiless one carries its HTTP status."""
    if isinstance(body, dict) and "message" in body and "error" in body:
        try:
            return ErrorOut.model_validate(
                {"hint": None, "exit_code": 12, "context": {}, **body}
            ).to_error()
        except ValueError:
            pass
    return MigctlError(
        f"the daemon answered HTTP {status} without a migctl error body",
        context={"http_status": status},
    )


class DaemonClient:
    """Requests to one daemon; raises ``MigctlError`` for every failure."""

    def __init__(
        self,
        *,
        url: str | None = None,
        socket_path: Path | None = None,
        token: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if url is not None and (url_socket := socket_of_url(url)) is not None:
            url, socket_path = None, url_socket
        self.on_socket = url is None
        if url is not None:
            self.where = url
            self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)
        else:
            if socket_path is None:
                raise UsageError("no daemon address", hint="give a socket path or a URL")
            self.where = f"unix:{socket_path}"
            transport = httpx.HTTPTransport(uds=str(socket_path))
            self.http = httpx.Client(
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
        response = self._send(method, path, body=body, params=params, timeout_s=timeout_s)
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            raise error_from_body(decoded, response.status_code)
        return decoded

    def request_text(self, path: str, *, params: dict[str, Any] | None = None) -> str:
        """A plain-text GET (``/metrics``, ``/v1/export``)."""
        response = self._send("GET", path, params=params)
        if response.status_code >= 400:
            try:
                decoded = response.json()
            except ValueError:
                decoded = None
            raise error_from_body(decoded, response.status_code)
        return response.text

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """One request; a 429 (rate limited: refused before anything was done) is sent again
        after its ``Retry-After``, for up to :data:`RATE_LIMIT_PATIENCE_S` in all."""
        waited = 0.0
        while True:
            try:
                response = self.http.request(
                    method,
                    path,
                    json=body,
                    params=params,
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.HTTPError as exc:
                raise self.unreachable(exc) from exc
            pause = _retry_after(response)
            if pause is None or waited + pause > RATE_LIMIT_PATIENCE_S:
                return response
            time.sleep(pause)
            waited += pause

    def unreachable(self, exc: Exception) -> MigctlError:
        return InvalidStateError(
            f"cannot reach the migctl daemon at {self.where}: {exc}",
            hint="start it (`systemctl start migctl` or `migctl serve`), point "
            "--socket / MIGCTL_SOCKET / MIGCTL_URL at it, or work without it: --local",
            context={"where": self.where},
        )

    def reachable(self) -> bool:
        """Whether a daemon answers ``/v1/health`` here (never raises)."""
        try:
            return self.http.get("/v1/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def run_job(self, method: str, path: str, body: object, *, timeout_s: float = 3600.0) -> Any:
        """Submit a job and wait for it: its ``result`` (also of a failed apply), else its error."""
        job = self.request(method, path, body=body)
        done = self.wait_job(int(job["job_id"]), timeout_s=timeout_s)
        if done.get("result") is not None:  # an apply that failed still reports its outcome
            return done["result"]
        if done.get("error"):
            raise error_from_body(done["error"], 500)
        if done["status"] not in FINISHED:
            raise InvalidStateError(
                f"job {done['job_id']} did not finish within {timeout_s:.0f} s",
                hint=f"follow it with GET /v1/jobs/{done['job_id']}",
                context={"job_id": done["job_id"]},
            )
        return done.get("result")

    def wait_job(self, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 0.2) -> Any:
        """Poll ``/v1/jobs/{id}`` until it finishes (or ``timeout_s``); its final JSON."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.request("GET", f"/v1/jobs/{job_id}")
            if job["status"] in FINISHED or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429 asks to wait (``Retry-After``); None for any other answer, or a 429
    that names no wait."""
    if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None
