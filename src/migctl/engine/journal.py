"""The apply journal: a checkpoint before the first change, and progress after each one.

Why this exists: "nothing is lost" — a crash (power, SIGKILL, a bug) at any point of an
apply must leave a state the next run detects and repairs. Before its first change an
apply writes the checkpoint (every affected GPU's MIG mode, GIs and CIs with placements)
and the planned operations; after each operation it records progress. The file is
replaced atomically, so it is always either the old or the new version. A lock held for
the whole apply tells a crashed apply (journal present, lock free) from a running one.

One journal per machine: the real machine, or each simulated machine by name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from migctl.errors import InUseError, InvalidInputError
from migctl.files import atomic_write

SCHEMA = 1


@dataclass
class JournalEntry:
    """What an apply in progress has written down."""

    machine: str
    pid: int
    started_at: str
    target: dict[str, Any]  # gpu index (str) -> desired layout (dict)
    checkpoint: dict[str, Any]  # gpu index (str) -> state before the first change
    ops: list[dict[str, Any]]  # planned operations, in order
    done: int = 0  # operations completed
    status: str = "running"  # running | rolling-back
    created_gis: dict[str, int] = field(default_factory=dict)  # "gpu:start" -> GI id
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JournalEntry:
        if raw.get("schema") != SCHEMA:
            raise ValueError(f"journal schema {raw.get('schema')!r}, expected {SCHEMA}")
        return cls(**raw)


class Journal:
    """The journal file of one machine, with its apply lock."""

    def __init__(self, machine: str, directory: Path) -> None:
        """``directory``: the machine's state directory (``MachineFiles.journal_dir``)."""
        self.machine = machine
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in machine)
        base = directory
        self.path = base / f"journal-{safe}.json"
        self.lock_path = base / f"journal-{safe}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the apply lock; refuse when another apply holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = open(self.lock_path, "a+")  # noqa: SIM115 - held for the with-block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise InUseError(
                    f"another migctl apply is changing {self.machine} right now",
                    hint="wait for it to finish; `migctl recover` repairs an interrupted one",
                ) from exc
            yield
        finally:
            handle.close()

    def read(self) -> JournalEntry | None:
        """The interrupted apply's entry, or None; a journal of the wrong shape, or of another
        machine, is refused (InvalidInputError naming the file) and left in place."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.refusal(f"is unreadable: {exc.strerror}") from exc
        from migctl.engine.journal_schema import parse_journal

        try:
            entry = JournalEntry.from_dict(parse_journal(text))
        except ValueError as exc:
            raise self.refusal(f"is malformed: {exc}") from exc
        if entry.machine != self.machine:
            raise self.refusal(f"was written for {entry.machine}, not {self.machine}")
        return entry

    def refusal(self, what: str) -> InvalidInputError:
        """An error that names this journal as the cause, and how to get past it."""
        return InvalidInputError(
            f"the apply journal {self.path} {what}",
            hint=f"inspect it; remove it ({self.path}) to discard the interrupted apply, then "
            "check the GPUs with `migctl status` and apply again",
            context={"path": str(self.path)},
        )

    def write(self, entry: JournalEntry) -> None:
        atomic_write(self.path, json.dumps(entry.to_dict(), indent=1, sort_keys=True))

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
