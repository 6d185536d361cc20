"""Where a simulated machine's state lives: a JSON file with a lock, or memory.

Why this exists: consecutive CLI processes (and concurrent ones) must see one machine.
Writers take an exclusive ``flock`` on ``STATE.lock``, read the current state, change it,
and replace the file atomically (write, fsync, rename), so a reader never sees half a
state and a crash never leaves one. Readers take no lock and cache by file identity.

Every other file of a simulated machine (its apply journal, lease database, CDI spec) lives in
its own directory, :attr:`FileStore.files_dir` (``NAME.json`` -> ``NAME/`` beside it), never in
the host's ``/var/lib/migctl``: two simulated machines never share a journal or a lease. A
machine in memory gets a private temporary directory that goes with it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from migctl.errors import InvalidInputError
from migctl.files import atomic_write
from migctl.sim.state import SCHEMA, MachineState

SIM_DIR_ENV = "MIGCTL_SIM_DIR"


def default_sim_dir() -> Path:
    explicit = os.environ.get(SIM_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "migctl" / "sim"


class StateStore(Protocol):
    """What the simulated library needs from a store."""

    def read(self) -> MachineState: ...

    def transaction(self) -> contextlib.AbstractContextManager[MachineState]: ...

    @property
    def files_dir(self) -> Path:
        """The directory of the machine's own files (journal, lease database, CDI spec)."""
        ...


class MemoryStore:
    """State in memory: for library use and fast property tests."""

    def __init__(self, state: MachineState) -> None:
        self._state = state
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def read(self) -> MachineState:
        return self._state

    @property
    def files_dir(self) -> Path:
        """A private temporary directory, removed when this store is gone."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="migctl-sim-")
        return Path(self._scratch.name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MachineState]:
        working = copy.deepcopy(self._state)
        yield working
        self._state = working


class FileStore:
    """State in ``path`` (JSON), created by ``factory`` on first use."""

    def __init__(self, path: Path, factory: Callable[[], MachineState]) -> None:
        self.path = path
        self._factory = factory
        self._cache_key: bytes | None = None
        self._cache: MachineState | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def files_dir(self) -> Path:
        """``NAME/`` beside ``NAME.json``: the machine's journal, lease database, CDI spec."""
        return self.path.with_suffix("")

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> MachineState:
        """The current state; parsed again only when the file's bytes changed.

        Comparing bytes (not stat fields) cannot be fooled by a reused inode number with a
        coarse timestamp; the file is small, so reading it is cheap.
        """
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            with self.transaction() as state:
                return copy.deepcopy(state)
        if text != self._cache_key or self._cache is None:
            self._cache = self._parse(text)
            self._cache_key = text
        return self._cache

    def _load(self) -> MachineState:
        return self._parse(self.path.read_bytes())

    def _parse(self, text: bytes) -> MachineState:
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r}, expected {SCHEMA}")
            return MachineState.from_dict(raw)
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"simulator state {self.path} is unreadable: {exc}",
                hint="start the machine afresh with `migctl sim reset-state` "
                f"(removes {self.path})",
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MachineState]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self._load() if self.path.exists() else self._factory()
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, state: MachineState) -> None:
        atomic_write(self.path, json.dumps(state.to_dict(), indent=1, sort_keys=True))
        self._cache_key = None

    def remove(self) -> None:
        """Forget the machine: its state and its own files (journal, leases, CDI spec)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self._cache_key = None
