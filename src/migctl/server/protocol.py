"""The daemon's HTTP protocol: connection budgets, and deadlines for a request to arrive.

Why this module exists: uvicorn bounds neither how many connections a client holds nor how long
a request may take to arrive (its keep-alive timeout covers only idle connections between
requests). A client that sends half a request head, or a head and then a trickle of body, holds
a connection (a file descriptor) for as long as it likes. :class:`GuardedH11Protocol` (uvicorn's
h11 protocol with the peer's credentials, one instance per connection):

* takes a slot in a :class:`~migctl.server.connections.ConnectionBudget` when the connection is
  accepted, or answers at once that there is none and closes it; gives the slot back when the
  connection ends;
* closes a connection whose request head has not fully arrived ``header_timeout_s`` after the
  connection opened (or after the request's first byte, on a kept-alive connection), and one
  whose body has not fully arrived ``body_timeout_s`` after its head. Once a request is in, the
  daemon may take its time (a lease request may wait up to an hour): no deadline applies.

Only ``migctl.server.run`` imports this module.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from migctl.server.connections import ConnectionBudget, Slot, refusal_bytes
from migctl.server.peercred import PeerCredH11Protocol
from migctl.server.quietlog import QuietLog

log = logging.getLogger(__name__)
REFUSED_LINGER_S = 1.0  # a refused connection is kept this long to read what the client sent
MAX_LINGERING = 64  # beyond this many at once, refused connections are closed at once


class GuardedH11Protocol(PeerCredH11Protocol):
    """See the module docstring; :func:`guarded_protocol` binds it to one daemon's budget."""

    budget: ClassVar[ConnectionBudget]
    quiet: ClassVar[QuietLog]
    lingering: ClassVar[list[int]]  # one counter shared by a daemon's connections

    _slot: Slot | None = None
    _phase: str = "idle"  # "head", "body" (waiting for the client), "busy", "idle", "refused"
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        admitted = self.budget.admit(self.peer)
        if isinstance(admitted, Slot):
            self._slot = admitted
            self._enter("head")
            return
        self.quiet.warn(f"refused:{admitted.context}", f"refused a connection: {admitted.message}")
        transport.write(refusal_bytes(admitted))
        self._phase = "refused"
        if self.lingering[0] >= MAX_LINGERING:
            transport.close()
            return
        self.lingering[0] += 1
        self._deadline = self.loop.call_later(REFUSED_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._phase == "refused":
            self.transport.close()  # its request was read: no reset hides the answer
            return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._enter("idle")  # uvicorn's keep-alive timeout takes over until the next byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._phase == "refused":
            self.lingering[0] -= 1
        if self._slot is not None:
            self.budget.release(self._slot)
            self._slot = None
        self._phase = "closed"
        super().connection_lost(exc)

    def _follow(self) -> None:
        """After new bytes: which deadline applies now."""
        cycle: Any = self.cycle
        if cycle is None or cycle.response_complete:
            if self._phase == "idle":
                self._enter("head")  # the first bytes of the next request
        elif cycle.more_body:
            if self._phase != "body":
                self._enter("body")
        elif self._phase != "busy":
            self._enter("busy")

    def _enter(self, phase: str) -> None:
        self._cancel()
        self._phase = phase
        limits = self.budget.limits
        timeout = {"head": limits.header_timeout_s, "body": limits.body_timeout_s}.get(phase)
        if timeout is not None:
            self._deadline = self.loop.call_later(timeout, self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self._phase != phase or self.transport.is_closing():
            return
        who = "TCP" if self.peer is None else f"uid {self.peer.uid}"
        self.quiet.warn(
            f"{phase}:{who}", f"closed a connection ({who}): its request {phase} took too long"
        )
        self.transport.close()

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_protocol(budget: ConnectionBudget) -> type[GuardedH11Protocol]:
    """The protocol class for one daemon (uvicorn instantiates it per connection)."""
    return type(
        "DaemonH11Protocol",
        (GuardedH11Protocol,),
        {"budget": budget, "quiet": QuietLog(log), "lingering": [0]},
    )
