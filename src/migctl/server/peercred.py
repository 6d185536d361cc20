"""Who is on the other end of a Unix socket: SO_PEERCRED, injected into each request.

Why this module exists: local users are identified by the kernel, not by a password. When a
process connects to the daemon's Unix socket, ``getsockopt(SO_PEERCRED)`` gives the pid, uid and
gid it had at ``connect()``; nobody can forge them. uvicorn does not put them in the ASGI scope,
so :class:`PeerCredH11Protocol` (uvicorn's h11 protocol, one instance per connection) reads them
once in ``connection_made`` and wraps the app so that every request on that connection carries
them as ``scope["migctl.peer"]`` (``None`` on TCP). A request without the key is treated as
anonymous, so a code path that forgot the wrapper fails closed. It also notes whether the last
bytes of each answer went to a connection still open (``scope["migctl.delivered"]``: leases
stay provisional until then, see ``provisional``).

Only ``migctl.server`` imports this module; it imports uvicorn and the standard library.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_SCOPE_KEY = "migctl.peer"
DELIVERED_KEY = "migctl.delivered"  # the answer's last bytes went to a connection still open
_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


@dataclass(frozen=True, slots=True)
class PeerCred:
    """The connecting process as the kernel saw it at ``connect()``."""

    pid: int
    uid: int
    gid: int


def read_peercred(sock: Any) -> PeerCred | None:
    """SO_PEERCRED of a connected Unix socket; None for any other socket or on failure."""
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid=pid, uid=uid, gid=gid)


def peer_of(scope: Mapping[str, Any]) -> PeerCred | None:
    """The peer a request came from (Unix socket), or None (TCP, or unknown)."""
    peer = scope.get(PEER_SCOPE_KEY)
    return peer if isinstance(peer, PeerCred) else None


class PeerCredH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that stamps each request scope with the connection's peer."""

    peer: PeerCred | None = None  # the connection's peer (None: TCP)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.peer = read_peercred(transport.get_extra_info("socket"))
        inner = self.app

        async def app_with_peer(scope: Any, receive: Any, send: Any) -> None:
            scope[PEER_SCOPE_KEY] = peer

            async def tracked_send(message: Any) -> None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    scope[DELIVERED_KEY] = not transport.is_closing()  # else uvicorn drops it
                await send(message)

            await inner(scope, receive, tracked_send)

        self.app = app_with_peer
