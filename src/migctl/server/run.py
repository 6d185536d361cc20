"""Run the daemon: reconcile, open the listeners, serve until SIGTERM/SIGINT, clean up.

Why this module exists: ``migctl serve`` and the tests start the daemon the same way:
bind the listeners (a second daemon is refused before it touches anything), reconcile (see
``startup``), serve. The Unix
socket is created here (not by uvicorn) so its mode is exactly ``0666`` (any local user may
connect; the kernel tells the daemon who they are) and a live daemon's socket is never stolen: a
socket path that answers is refused, a stale one (no one listening) is replaced. TCP, when
asked for, uses the same app (bearer tokens only). systemd's ``Type=notify`` is supported
(``READY=1`` once listening). uvicorn's h11 protocol is subclassed to carry SO_PEERCRED, keep
each caller within its connection budget and bound how long a request may take to arrive
(``server.protocol``); the budgets are fitted to the open file limit.

Only the ``migctl serve`` verb imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from pathlib import Path

import uvicorn

from migctl.errors import InUseError, PermissionDeniedError
from migctl.schemas.layouts import LayoutTarget
from migctl.server.app import create_app
from migctl.server.config import ServiceConfig
from migctl.server.connections import ConnectionBudget, fit_to_descriptors
from migctl.server.protocol import guarded_protocol
from migctl.server.service import Service
from migctl.settings import Settings

log = logging.getLogger(__name__)
BACKLOG = 1024


def _socket_in_use(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_unix(path: Path, mode: int) -> socket.socket:
    """A listening Unix socket at ``path`` with ``mode``; refuses when a daemon answers there."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        if _socket_in_use(path):
            raise InUseError(
                f"another daemon is listening on {path}",
                hint="stop it first (systemctl stop migctl), or pass another --socket",
            )
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        sock.listen(BACKLOG)
    except PermissionError as exc:
        sock.close()
        raise PermissionDeniedError(
            f"cannot create the socket {path}: {exc.strerror}",
            hint="run as root, or pass --socket in a directory you own",
        ) from exc
    return sock


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InUseError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose a free port with --tcp HOST:PORT",
        ) from exc
    sock.listen(BACKLOG)
    return sock


def notify_systemd(target: str | None, state: str) -> None:
    """``sd_notify(state)`` to ``target`` ($NOTIFY_SOCKET when started by systemd with
    ``Type=notify``); nothing without one."""
    if not target:
        return
    address = "\0" + target[1:] if target.startswith("@") else target
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())


class _Server(uvicorn.Server):
    """uvicorn's server that tells systemd when it is ready."""

    def __init__(self, config: uvicorn.Config, notify_socket: str | None) -> None:
        super().__init__(config)
        self.notify_socket = notify_socket

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        notify_systemd(self.notify_socket, "READY=1")
        log.info("migctl serve: ready")


def serve(
    config: ServiceConfig,
    settings: Settings,
    *,
    access_log: bool = False,
    initial_layout: LayoutTarget | None = None,
) -> None:
    """Open the machine of ``settings`` (its LocalNode), listen, reconcile, serve until stopped;
    always remove the socket and close the node and the stores.

    ``initial_layout`` (a layout file's target) becomes the desired layout of the MIG GPUs it
    names when the daemon remembers none yet.
    SIGTERM/SIGINT during start-up are noted and honoured once start-up is done (a
    reconciling apply is never cut short); while serving, uvicorn shuts down gracefully and
    hands the signal back to our handler (which only notes it), so the clean-up below runs.
    """
    stop_signals: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stop_signals.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    service = Service.open(config, settings)
    sockets: list[socket.socket] = []
    try:
        sockets.append(bind_unix(config.socket_path, config.socket_mode))  # refuses a 2nd daemon
        if config.tcp is not None:
            sockets.append(bind_tcp(*config.tcp))
        if initial_layout is not None and not service.desired.targets():
            _remember_initial(service, initial_layout)
        service.start()  # clients that connect meanwhile wait in the listen backlog
        if stop_signals:
            log.info("migctl serve: stopped during start-up (signal %d)", stop_signals[0])
            return
        log.info("migctl serve: listening on %s", ", ".join(config.listeners()))
        _Server(_uvicorn_config(service, access_log), config.notify_socket).run(sockets=sockets)
    finally:
        notify_systemd(config.notify_socket, "STOPPING=1")
        for sock in sockets:
            sock.close()
        if sockets:
            with contextlib.suppress(FileNotFoundError):
                config.socket_path.unlink()
        service.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _remember_initial(service: Service, layout: LayoutTarget) -> None:
    """``--layout``: the layout file's layouts of the MIG GPUs become the desired layout."""
    found = service.resolve(layout)
    mig = service.gpu.models()
    targets = {gpu: t for gpu, t in found.targets.items() if gpu in mig}
    service.desired.put(targets, by="migctl serve --layout", job_id=None)


def _uvicorn_config(service: Service, access_log: bool) -> uvicorn.Config:
    limits = fit_to_descriptors(service.config.connections)
    budget = ConnectionBudget(limits, lambda peer: service.authenticate(peer, None).is_admin)
    return uvicorn.Config(
        create_app(service),
        http=guarded_protocol(budget),
        ws="none",  # no WebSocket upgrades: every request goes through the h11 protocol above
        lifespan="on",
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=30,
        backlog=BACKLOG,
        timeout_graceful_shutdown=30,
    )
