"""Per-invocation CLI state: global options, the lazily opened backend, the consoles.

Why this exists: every verb needs the same things (``--sim``, ``--read-only``,
``--output``), and the backend must be opened only by verbs that touch GPUs, so that
offline verbs (``catalog``, ``plan --model``) work on a machine without a driver.
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.backends.nvml import NvmlBackend
    from migctl.catalog import Catalog


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
    _backend: NvmlBackend | None = None
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
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from migctl.catalog import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    @property
    def backend(self) -> NvmlBackend:
        if self._backend is None:
            from migctl.backends.select import open_backend

            self._backend = open_backend(self.sim, read_only=self.read_only, catalog=self.catalog)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


_CURRENT: list[Session] = []


def set_session(current: Session) -> None:
    """Make ``current`` the session of this invocation (the root callback calls this)."""
    _CURRENT[:] = [current]


def session() -> Session:
    if not _CURRENT:
        set_session(Session())
    return _CURRENT[0]
