"""``migctl run``'s leases from any node: acquire for the command, renew, release.

Why this module exists: ``migctl run`` (:func:`migctl.tenancy.runner.run_with`) must hold its
lease the same way on this host's GPUs and through the migctl daemon: one
:class:`NodeLeaser` over the :class:`~migctl.node.protocol.Node` methods ``acquire``, ``renew``
and ``release``. The lease names the command's own process as its holder when whoever grants
it sees this host's processes (a ``LocalNode``, or a daemon on this host's Unix socket), so it
ends with the command even if migctl is killed. A daemon over TCP cannot see them: the lease
then gets a TTL (the request's, else :data:`REMOTE_RUN_TTL_S`) that ``run`` renews while the
command runs, so it ends by itself soon after a killed migctl.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migctl.errors import InvalidStateError, MigctlError, NotFoundError

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.node.protocol import Node
    from migctl.schemas.leases import LeaseRequest

log = logging.getLogger(__name__)
REMOTE_RUN_TTL_S = 120.0  # `migctl run` over TCP: the lease ends this long after migctl dies


@dataclass(frozen=True)
class NodeLeaser:
    """A :class:`migctl.tenancy.runner.Leaser` over ``node`` (see the module docstring)."""

    node: Node
    request: LeaseRequest
    follows_pids: bool = True  # the node sees this host's processes

    @property
    def ttl_seconds(self) -> float | None:
        if self.request.ttl_seconds is None and not self.follows_pids:
            return REMOTE_RUN_TTL_S
        return self.request.ttl_seconds

    def acquire(self, holder_pid: int) -> Lease:
        pid = holder_pid if self.follows_pids else None
        asked = self.request.model_copy(update={"pid": pid, "ttl_seconds": self.ttl_seconds})
        return self.node.acquire(asked)

    def renew(self, lease: Lease) -> None:
        self.node.renew(lease.lease_id)

    def release(self, lease: Lease) -> Lease | None:
        """Release quietly: a lease that already ended is fine; other failures are logged (the
        lease ends anyway once its holder process is gone or its TTL passes)."""
        try:
            return self.node.release(lease.lease_id)
        except MigctlError as error:
            unreachable = "where" in error.context  # the daemon, not the lease, is missing
            if isinstance(error, NotFoundError | InvalidStateError) and not unreachable:
                return None
            log.warning("could not release lease %d: %s", lease.lease_id, error.message)
            return None
