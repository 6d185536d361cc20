"""Whether this invocation talks to the GPUs directly or through the migctl daemon.

Why this exists: on a shared server one daemon owns the GPUs (``migctl serve``) and users are
not root; the same ``migctl run --profile 1g.10gb -- ...`` must work there without root, and
keep working on a laptop with the simulator or on a machine without a daemon. One rule,
decided once per invocation and only by verbs that need the machine:

1. ``--local`` (or ``MIGCTL_LOCAL=1``): direct access (NVML as root, or the simulator).
2. ``MIGCTL_URL`` set (``unix:///path/to.sock``, or ``http://host:port`` with
   ``MIGCTL_TOKEN``): always the daemon; an unreachable daemon is an error, never a silent
   fallback. Together with ``--sim`` it is a usage error (which machine was meant?).
3. ``--sim NAME`` (or ``MIGCTL_SIM``): local; the simulator is a local machine.
4. Otherwise the daemon's sockets are looked for, in order (``server.config.candidate_sockets``):
   ``MIGCTL_SOCKET`` alone when set; else the system daemon's ``/run/migctl/migctl.sock`` (for
   every user, root or not), then a non-root user's own ``$XDG_RUNTIME_DIR/migctl.sock``. The
   first socket file that exists decides: a daemon answering ``/v1/health`` there is used. A
   socket file is a daemon's (it removes it when it stops cleanly), so one where nobody
   answers, or whose daemon refuses this client, or that this user may not connect to, is an
   error saying so (exit 10, or 4), never a silent switch to local access: on a host whose
   daemon owns the GPUs that would grant devices from a lease database the daemon never sees.
   Only when no socket file exists at all: local.

Nothing extra is printed; ``-v`` prints one line on stderr saying which way was taken and why.
Only ``migctl.cli.session`` imports this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migctl.errors import UsageError

if TYPE_CHECKING:
    from migctl.server.client import ServiceClient

URL_ENV = "MIGCTL_URL"


@dataclass(frozen=True, slots=True)
class Route:
    """The way chosen: a daemon client, or None for direct access; ``why`` for ``-v``."""

    client: ServiceClient | None
    why: str

    @property
    def via_daemon(self) -> bool:
        return self.client is not None


def decide(*, sim: str | None, local: bool) -> Route:
    """Apply the rule in the module docstring (probing the default socket if it exists)."""
    if local:
        return Route(None, "local: --local / MIGCTL_LOCAL (direct GPU access)")
    url = os.environ.get(URL_ENV)
    if url:
        if sim:
            raise UsageError(
                f"--sim {sim} (a local simulated machine) and MIGCTL_URL={url} (a daemon) "
                "contradict each other",
                hint="drop --sim / MIGCTL_SIM to use the daemon, or add --local to use the "
                "simulator directly",
            )
        client = _client(url=url)
        return Route(client, f"through the daemon at {client.where} (MIGCTL_URL)")
    if sim:
        return Route(None, f"local: --sim {sim} (the simulator is local)")
    return _probe_default_socket()


def _probe_default_socket() -> Route:
    from migctl.extras import needed

    with needed("finding the migctl daemon", extra="server"):
        from migctl.server.config import candidate_sockets, first_existing

    candidates = candidate_sockets(os.environ)
    path = first_existing(candidates)
    if path is None:
        looked = " or ".join(str(p) for p in candidates)
        return Route(None, f"local: no daemon socket at {looked}")
    with needed(f"the daemon client (a migctl daemon socket exists at {path})", extra="server"):
        from migctl.server.client import probe_socket
    client = probe_socket(path)  # raises, saying why, when nobody usable answers there
    return Route(client, f"through the daemon at {client.where} (found on the default socket)")


def _client(*, url: str) -> ServiceClient:
    from migctl.extras import needed

    with needed(f"MIGCTL_URL={url} (the daemon client)", extra="server"):
        from migctl.server.client import ServiceClient
    return ServiceClient(url=url)
