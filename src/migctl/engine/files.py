"""Where one machine's engine files are: its lease database and its journal's directory.

Why this module exists: the engine marks leased instances busy (lease database) and writes a
checkpoint before every change (journal); which files those are is the caller's decision
(``LocalNode`` takes them from its :class:`~migctl.settings.Settings`), never an environment
variable read here. A simulated machine has its own directory (``Backend.files_dir``), so the
engine can find a simulator's files by itself; on real hardware the caller must say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migctl.backends.base import Backend
from migctl.errors import UsageError

LEASE_DB_NAME = "leases.db"


@dataclass(frozen=True, slots=True)
class MachineFiles:
    """The lease database (None: no lease store) and the directory of the apply journal
    (None: nothing may be changed, e.g. a check through a daemon's read-only view)."""

    lease_db: Path | None
    state_dir: Path | None

    @classmethod
    def of(cls, backend: Backend, files: MachineFiles | None = None) -> MachineFiles:
        """``files`` when given; else a simulated machine's own files."""
        if files is not None:
            return files
        home = backend.files_dir
        if home is None:
            raise UsageError(
                "the engine needs to know this machine's lease database and state directory",
                hint="use migctl.open_node(), which takes them from its Settings",
            )
        return cls(home / LEASE_DB_NAME, home)

    def journal_dir(self) -> Path:
        """The journal's directory; refused for files that only read."""
        if self.state_dir is None:
            raise UsageError(
                "no state directory for the apply journal: this view of the machine only reads",
                hint="change the machine through a Node (migctl.open_node or the daemon)",
            )
        return self.state_dir


READ_ONLY_FILES = MachineFiles(None, None)  # reading and checking only: no leases, no journal
