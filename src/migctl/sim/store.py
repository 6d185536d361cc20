"""Where a simulated machine's state lives: a JSON file with a lock, or memory.

Why this exists: consecutive CLI processes (and concurrent ones) must see one machine.
Writers take an exclusive ``flock`` on ``STATE.lock``, read the current state, change it,
and replace the file atomically (write, fsync, rename), so a reader never sees half a
state and a crash never leaves one. Readers take no lock and cache by file identity.

A state file is validated before use (``state.parse_state``: types and keys, with pydantic;
then ``SimMachine.check``: consistent with its GPU models) and refused with a message naming
it. The full validation is skipped for bytes migctl itself wrote: each writer records their
SHA-256 in the lock file, so an edited, truncated or foreign file is always validated.

Every other file of a simulated machine (its apply journal, lease database, CDI spec) lives in
its own directory, :attr:`FileStore.files_dir` (``NAME.json`` -> ``NAME/`` beside it), never in
the host's ``/var/lib/migctl``: two simulated machines never share a journal or a lease. A
machine in memory gets a private temporary directory that goes with it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from migctl.errors import InvalidInputError
from migctl.files import atomic_write
from migctl.sim.state import MachineState, parse_state


def default_sim_dir() -> Path:
    """The simulator's directory when a caller passes none: the one rule of
    :class:`~migctl.settings.Settings` (``MIGCTL_SIM_DIR``, else ``<user state>/migctl/sim``)."""
    from migctl.settings import Settings

    return Settings.from_env(os.environ).sim_dir


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
        # checks a parsed state against its GPU models (``SimMachine.check``); ValueError: bad
        self.check: Callable[[MachineState], None] | None = None

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
        """The state in ``text``: validated in full (``parse_state``), unless migctl wrote
        these very bytes (their digest is in the lock file), then checked against the models."""
        try:
            if self._written_by_migctl(text):
                state = MachineState.from_dict(json.loads(text))
            else:
                state = parse_state(text)
            if self.check is not None:
                self.check(state)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInputError(
                f"simulator state {self.path} is malformed: {exc}",
                hint="correct the file, or start the machine afresh with `migctl sim "
                f"reset-state` (removes {self.path} and {self.files_dir})",
                context={"path": str(self.path)},
            ) from exc
        return state

    def _written_by_migctl(self, text: bytes) -> bool:
        try:
            recorded = self.lock_path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return False
        return recorded == hashlib.sha256(text).hexdigest()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MachineState]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self._load() if self.path.exists() else self._factory()
                yield state
                text = self._write(state)
                lock.seek(0)
                lock.truncate()
                lock.write(hashlib.sha256(text.encode()).hexdigest())  # see _parse
                lock.flush()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, state: MachineState) -> str:
        text = json.dumps(state.to_dict(), indent=1, sort_keys=True)
        atomic_write(self.path, text)
        self._cache_key = None
        return text

    def remove(self) -> None:
        """Forget the machine: its state and its own files (journal, leases, CDI spec)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self._cache_key = None
