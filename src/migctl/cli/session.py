"""Per-invocation CLI state: the global options, the Settings, the Node, the consoles.

Why this exists: every verb needs the same things (``--sim``, ``--read-only``, ``--output``,
``--local``), read once at the edge into one :class:`~migctl.settings.Settings`; and the machine
must be opened only by verbs that touch GPUs, so that offline verbs (``catalog``,
``plan --model``) work on a machine without a driver.

Verbs ask for :attr:`Session.node`: a ``LocalNode`` on this host's GPUs (or a simulated machine),
or a ``RemoteNode`` on the migctl daemon that owns them (the rule: ``cli/route.py``); the verb
calls the same Node method either way. :attr:`Session.local_node` is for the few verbs that
describe this very host (``cdi generate``, ``slurm gres``, ``serve``): through a daemon they
are refused with a clear message (exit 7) instead of reading the GPUs behind its back.
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.catalog import Catalog
    from migctl.cli.route import Route
    from migctl.node.local import LocalNode
    from migctl.node.protocol import Node
    from migctl.settings import Settings
    from migctl.sim import SimControl


def _console(stderr: bool) -> Console:
    """A console; when not a terminal, wide enough that UUIDs are never cut."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "200"))
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass
class Session:
    sim: str | None = None
    read_only: bool = False
    output: OutputFormat = OutputFormat.TABLE
    verbose: int = 0
    local: bool = False
    lease_db: Path | None = None  # a verb's --lease-db
    _settings: Settings | None = None
    _route: Route | None = None
    _node: Node | None = None
    _local_node: LocalNode | None = None
    _catalog: Catalog | None = None
    _consoles: dict[bool, Console] = field(default_factory=dict)

    @property
    def console(self) -> Console:
        """Standard output, created on first use (Rich costs start-up time)."""
        if False not in self._consoles:
            self._consoles[False] = _console(stderr=False)
        return self._consoles[False]

    @property
    def err(self) -> Console:
        if True not in self._consoles:
            self._consoles[True] = _console(stderr=True)
        return self._consoles[True]

    @property
    def json(self) -> bool:
        return self.output == OutputFormat.JSON

    @property
    def settings(self) -> Settings:
        """Every path and switch, read from the flags and ``MIGCTL_*`` once (the edge)."""
        if self._settings is None:
            from migctl.settings import Settings

            flags: dict[str, object] = {"sim": self.sim, "lease_db": self.lease_db}
            if self.read_only:
                flags["read_only"] = True
            if self.local:
                flags["local"] = True
            self._settings = Settings.from_env(os.environ, overrides=flags)
        return self._settings

    def use_lease_db(self, path: Path | None) -> None:
        """A verb's ``--lease-db``: the lease database of this host (before the node opens)."""
        if path is not None:
            self.lease_db = path
            self._settings = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from migctl.catalog import load_catalog

            self._catalog = load_catalog(self.settings.catalog_files)
        return self._catalog

    def route(self) -> Route:
        """Direct or through the daemon: decided on first use (``-v`` says which, and why)."""
        if self._route is None:
            from migctl.cli.route import decide
            from migctl.client.discovery import effective_uid

            self._route = decide(self.settings, os.environ, effective_uid())
            if self.verbose:
                self.err.print(f"migctl: {self._route.why}", markup=False, highlight=False)
        return self._route

    def local_only(self, why: str) -> None:
        """Mark this invocation local without probing for a daemon (``serve`` itself)."""
        if self._route is None:
            from migctl.cli.route import Route

            self._route = Route(None, f"local: {why}")

    @property
    def node(self) -> Node:
        """The machine this invocation works on (see the module docstring)."""
        if self._node is None:
            client = self.route().client
            if client is None:
                self._node = self.local_node
            else:
                self._node = self._remote(client)
        return self._node

    def _remote(self, client: object) -> Node:
        from migctl.client.http import DaemonClient
        from migctl.node.remote import RemoteNode

        assert isinstance(client, DaemonClient)
        node: Node = RemoteNode(client, catalog_files=self.settings.catalog_files)
        if self.settings.read_only:
            from migctl.cli.read_only import ReadOnlyNode

            return ReadOnlyNode(node)
        return node

    @property
    def local_node(self) -> LocalNode:
        """This host's GPUs; refused when this invocation goes through the daemon."""
        if self._local_node is None:
            client = self.route().client
            if client is not None:
                raise _no_daemon_form(client.where)
            from migctl.node.local import open_local

            self._local_node = open_local(self.settings, self.catalog)
        return self._local_node

    def sim_control(self) -> SimControl | None:
        """The simulator's control panel of the simulated machine worked on here, else None
        (real GPUs, or the daemon's machine)."""
        if self.route().client is not None or self.settings.sim is None:
            return None
        from migctl.sim import SimControl, open_sim

        return SimControl(open_sim(self.settings.sim, self.catalog, self.settings.sim_dir))

    def close(self) -> None:
        node, self._node = self._node, None
        local, self._local_node = self._local_node, None
        if node is not None and node is not local:
            node.close()
        if local is not None:
            local.close()
        if node is None and self._route is not None and self._route.client is not None:
            self._route.client.close()
        self._route = None


def _no_daemon_form(where: str) -> Exception:
    import click

    from migctl.errors import NotSupportedError

    context = click.get_current_context(silent=True)
    verb = context.command_path if context is not None else "this command"
    return NotSupportedError(
        f"`{verb}` describes the GPU host itself and has no daemon form, but this invocation "
        f"goes through the migctl daemon at {where}",
        hint="run it on the GPU host with --local (root; it bypasses the daemon)",
        context={"daemon": where},
    )


_CURRENT: list[Session] = []


def set_session(current: Session) -> None:
    """Make ``current`` the session of this invocation (the root callback calls this)."""
    _CURRENT[:] = [current]


def session() -> Session:
    if not _CURRENT:
        set_session(Session())
    return _CURRENT[0]
