"""Per-invocation CLI state: global options, the lazily opened backend, the consoles.

Why this exists: every verb needs the same things (``--sim``, ``--read-only``,
``--output``, ``--local``), and the backend must be opened only by verbs that touch GPUs, so
that offline verbs (``catalog``, ``plan --model``) work on a machine without a driver.

Verbs with a daemon form ask :attr:`Session.daemon` first (a client when this invocation goes
through the migctl daemon, see ``cli.route``), and use :attr:`Session.backend` otherwise. Verbs
that only read use :attr:`Session.reader`: the backend, or through the daemon a read-only view
of it (``cli.remote_reader``). A verb without a daemon form that reaches for the backend while a
daemon owns the GPUs is refused with a clear message (exit 7) instead of changing the GPUs
behind the daemon's back.
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.errors import NotSupportedError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.backends.base import Backend
    from migctl.backends.nvml import NvmlBackend
    from migctl.catalog import Catalog
    from migctl.cli.route import Route
    from migctl.engine.files import MachineFiles
    from migctl.server.client import ServiceClient
    from migctl.settings import Settings


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
    _route: Route | None = None
    _backend: NvmlBackend | None = None
    _reader: Backend | None = None
    _catalog: Catalog | None = None
    _settings: Settings | None = None
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
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from migctl.catalog import load_catalog

            self._catalog = load_catalog(self.settings.catalog_files)
        return self._catalog

    def route(self) -> Route:
        """Direct or through the daemon: decided on first use (``-v`` says which, and why)."""
        if self._route is None:
            from migctl.cli.route import decide

            self._route = decide(sim=self.sim, local=self.local)
            if self.verbose:
                self.err.print(f"migctl: {self._route.why}", markup=False, highlight=False)
        return self._route

    @property
    def daemon(self) -> ServiceClient | None:
        """The daemon client when this invocation goes through the daemon, else None."""
        return self.route().client

    def local_only(self, why: str) -> None:
        """Mark this invocation local without probing for a daemon (``serve`` itself)."""
        if self._route is None:
            from migctl.cli.route import Route

            self._route = Route(None, f"local: {why}")

    @property
    def backend(self) -> NvmlBackend:
        if self._backend is None:
            route = self.route()
            if route.client is not None:
                raise _no_daemon_form(route.client.where)
            from migctl.backends.select import open_backend

            self._backend = open_backend(
                self.sim,
                read_only=self.read_only,
                catalog=self.catalog,
                sim_dir=self.settings.sim_dir,
            )
        return self._backend

    @property
    def settings(self) -> Settings:
        """Every path and switch, read from the flags and ``MIGCTL_*`` once (the edge)."""
        if self._settings is None:
            from migctl.settings import Settings

            flags: dict[str, object] = {"sim": self.sim}
            if self.read_only:
                flags["read_only"] = True
            if self.local:
                flags["local"] = True
            self._settings = Settings.from_env(overrides=flags)
        return self._settings

    def machine_settings(self) -> Settings:
        """The settings of the machine worked on (a simulated one keeps its own files)."""
        return self.settings.for_machine(self.backend.files_dir)

    def lease_db(self, explicit: Path | None = None) -> Path:
        """The lease database of local verbs: ``--lease-db`` / ``MIGCTL_LEASE_DB``; for a
        simulated machine its own (in its directory); else the host's default."""
        if explicit is not None:
            return explicit
        return self.machine_settings().lease_db

    def refresh_cdi(self) -> Path | None:
        """MIG devices changed: keep a CDI spec in use current (see ``tenancy.cdi``)."""
        from migctl.tenancy.cdi import refresh_if_in_use

        settings = self.machine_settings()
        return refresh_if_in_use(
            self.backend,
            settings.cdi_path,
            explicit="cdi_path" in settings.explicit,
            proc_root=settings.proc_root,
        )

    def engine_files(self) -> MachineFiles:
        """The lease database and journal directory the engine uses on this machine."""
        from migctl.engine.files import MachineFiles

        settings = self.machine_settings()
        return MachineFiles(settings.lease_db, settings.state_dir)

    @property
    def reader(self) -> Backend:
        """The GPUs for reading: the backend, or through the daemon a read-only view of them."""
        if self._reader is None:
            client = self.route().client
            if client is None:
                self._reader = self.backend
            else:
                from migctl.cli.remote_reader import DaemonReader

                self._reader = DaemonReader(client, self.catalog)
        return self._reader

    def close(self) -> None:
        self._reader = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._route is not None and self._route.client is not None:
            self._route.client.close()
        self._route = None


def _no_daemon_form(where: str) -> NotSupportedError:
    import click

    context = click.get_current_context(silent=True)
    verb = context.command_path if context is not None else "this command"
    return NotSupportedError(
        f"`{verb}` works on the GPUs directly and has no daemon form, but this invocation goes "
        f"through the migctl daemon at {where}",
        hint="run it on the GPU host with --local (root; it bypasses the daemon), or use a verb "
        "the daemon serves: list, status, top, profiles, gi list, ci list, assert, export, "
        "catalog check, lease, run, env, docker-args, plan, apply, split, mode, metrics",
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
