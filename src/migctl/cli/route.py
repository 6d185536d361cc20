"""Whether this invocation works on the GPUs directly or through the migctl daemon.

Why this exists: on a shared server one daemon owns the GPUs (``migctl serve``) and users are
not root; the same ``migctl run --profile 1g.10gb -- ...`` must work there without root, and
keep working on a laptop with the simulator or on a machine without a daemon. One rule,
decided once per invocation from the :class:`~migctl.settings.Settings` and only by verbs that
need the machine:

1. ``--local`` (or ``MIGCTL_LOCAL=1``): direct access (NVML as root, or the simulator).
2. ``MIGCTL_URL`` set (``unix:///path/to.sock``, or ``http://host:port`` with
   ``MIGCTL_TOKEN``): always the daemon; an unreachable daemon is an error, never a silent
   fallback. Together with ``--sim`` it is a usage error (which machine was meant?).
3. ``--sim NAME`` (or ``MIGCTL_SIM``): local; the simulator is a local machine.
4. Otherwise the daemon's sockets are looked for (``client.discovery.candidate_sockets``):
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migctl.errors import UsageError

if TYPE_CHECKING:
    from migctl.client.http import DaemonClient
    from migctl.settings import Settings


@dataclass(frozen=True, slots=True)
class Route:
    """The way chosen: a daemon client, or None for direct access; ``why`` for ``-v``."""

    client: DaemonClient | None
    why: str

    @property
    def local(self) -> bool:
        return self.client is None

    @property
    def follows_local_pids(self) -> bool:
        """Whether whoever grants leases sees this host's processes (here, or a daemon on a
        Unix socket of this host): a lease may then name a holder PID and end with it."""
        return self.client is None or self.client.on_socket


def decide(settings: Settings, environ: Mapping[str, str], euid: int) -> Route:
    """Apply the rule in the module docstring (probing the default sockets if one exists)."""
    if settings.local:
        return Route(None, "local: --local / MIGCTL_LOCAL (direct GPU access)")
    if settings.url:
        if settings.sim:
            raise UsageError(
                f"--sim {settings.sim} (a local simulated machine) and MIGCTL_URL={settings.url} "
                "(a daemon) contradict each other",
                hint="drop --sim / MIGCTL_SIM to use the daemon, or add --local to use the "
                "simulator directly",
            )
        client = _client(settings)
        return Route(client, f"through the daemon at {client.where} (MIGCTL_URL)")
    if settings.sim:
        return Route(None, f"local: --sim {settings.sim} (the simulator is local)")
    return _probe_default_socket(settings, environ, euid)


def _probe_default_socket(settings: Settings, environ: Mapping[str, str], euid: int) -> Route:
    from migctl.client.discovery import candidate_sockets, first_existing
    from migctl.extras import needed

    candidates = candidate_sockets(settings, environ, euid)
    path = first_existing(candidates)
    if path is None:
        looked = " or ".join(str(p) for p in candidates)
        return Route(None, f"local: no daemon socket at {looked}")
    with needed(f"the daemon client (a migctl daemon socket exists at {path})", extra="server"):
        import httpx  # noqa: F401
    from migctl.client.discovery import probe_socket

    client = probe_socket(path, token=settings.token)  # raises, saying why, when unusable
    return Route(client, f"through the daemon at {client.where} (found on the default socket)")


def _client(settings: Settings) -> DaemonClient:
    from migctl.extras import needed

    with needed(f"MIGCTL_URL={settings.url} (the daemon client)", extra="server"):
        from migctl.client.http import DaemonClient
    return DaemonClient(url=settings.url, token=settings.token)
