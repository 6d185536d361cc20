"""Where a migctl daemon listens, and whether the one found there can be used.

Why this module exists: the CLI must never change the GPUs behind the back of a daemon that owns
them (its leases would not be seen), so it looks for the daemon's sockets before it touches
anything, and ``migctl serve`` must listen where clients look. Both rules live here, taking the
:class:`~migctl.settings.Settings`, the environment and the effective uid as arguments (read once
at the edge), so tests and other programs can ask them without touching ``os.environ``.

Where ``migctl serve`` listens (:func:`serve_socket`): ``MIGCTL_SOCKET`` (``settings.socket``
given explicitly); else :data:`SYSTEM_SOCKET` for root; else the user's own
``$XDG_RUNTIME_DIR/migctl.sock`` (or ``migctl.sock`` in the state directory).

Where clients look (:func:`candidate_sockets`): ``MIGCTL_SOCKET`` alone when set; else the system
daemon's socket (for every user, root or not), then, for others than root, their own. The first
socket file that exists decides (:func:`first_existing`); :func:`probe_socket` says clearly why
one that exists cannot be used, never "no daemon".

Anyone may import it; it needs httpx (the ``server`` extra) only when a socket is probed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.errors import InvalidStateError, PermissionDeniedError

if TYPE_CHECKING:
    from migctl.client.http import DaemonClient
    from migctl.settings import Settings

SYSTEM_SOCKET = Path("/run/migctl/migctl.sock")
SOCKET_NAME = "migctl.sock"
PROBE_TIMEOUT_S = 5.0  # a daemon found on a socket must answer /v1/health within this


def effective_uid() -> int:
    """Who runs this process (root looks only at the system socket)."""
    return os.geteuid()


def user_socket(settings: Settings, environ: Mapping[str, str]) -> Path:
    """A non-root user's own daemon socket: ``$XDG_RUNTIME_DIR/migctl.sock``, else one in the
    state directory."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime) / SOCKET_NAME
    return settings.state_dir / SOCKET_NAME


def serve_socket(settings: Settings, environ: Mapping[str, str], euid: int) -> Path:
    """Where ``migctl serve`` listens when ``--socket`` names none."""
    if "socket" in settings.explicit:
        return settings.socket
    return SYSTEM_SOCKET if euid == 0 else user_socket(settings, environ)


def candidate_sockets(settings: Settings, environ: Mapping[str, str], euid: int) -> list[Path]:
    """Where a client looks for a daemon, in order (see the module docstring)."""
    if "socket" in settings.explicit:
        return [settings.socket]
    if euid == 0:
        return [SYSTEM_SOCKET]
    return [SYSTEM_SOCKET, user_socket(settings, environ)]


def first_existing(paths: Sequence[Path]) -> Path | None:
    """The first of ``paths`` that exists (or cannot even be looked at: someone made it)."""
    for path in paths:
        try:
            if path.exists():
                return path
        except OSError:
            return path
    return None


def client_socket(settings: Settings, environ: Mapping[str, str], euid: int) -> Path:
    """The socket a client talks to when none is named: the first candidate that exists."""
    candidates = candidate_sockets(settings, environ, euid)
    return first_existing(candidates) or candidates[0]


def probe_socket(
    path: Path, *, token: str | None = None, timeout_s: float = PROBE_TIMEOUT_S
) -> DaemonClient:
    """A client of the daemon on the existing socket ``path``; a clear error when nobody (or
    nobody willing) answers there: never a silent "no daemon"."""
    _connectable(path, timeout_s)
    import httpx

    from migctl.client.http import DaemonClient, error_from_body

    client = DaemonClient(socket_path=path, token=token)  # the usual limit for the commands
    try:
        response = client.http.get("/v1/health", timeout=timeout_s)  # only the probe's is short
    except httpx.TimeoutException as exc:
        client.close()
        raise _silent(path, f"it did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        client.close()
        raise _stale(path, str(exc)) from exc
    if response.status_code == httpx.codes.OK:
        return client
    client.close()
    try:
        body = response.json()
    except ValueError:
        body = None
    refusal = error_from_body(body, response.status_code)
    raise InvalidStateError(
        f"the migctl daemon on {path} refused this client: HTTP {response.status_code}: "
        f"{refusal.message}",
        hint=refusal.hint or "see the daemon's log (journalctl -u migctl)",
        context={"socket": str(path), "http_status": response.status_code},
    )


def _connectable(path: Path, timeout_s: float) -> None:
    """A bare connect first: says "permission denied" or "stale" before any HTTP."""
    import socket

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
