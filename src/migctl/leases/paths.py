"""Where the lease database lives when the caller does not say.

Why this module exists: the CLI, ``migctl run`` and the service must all find the same file
without agreeing on a flag. Order: ``$MIGCTL_LEASE_DB``; for a simulated machine, ``leases.db``
in its own directory (never the host's: two simulated machines never share leases); as root,
``/var/lib/migctl/leases.db`` when that directory is (or can be made) writable; else
``$XDG_STATE_HOME/migctl/leases.db`` (``~/.local/state/migctl/leases.db``). Anyone may import
it; it imports nothing from migctl.

Note for operators: per-user state directories mean per-user stores. For a GPU shared by many
users, point every user at one store (``MIGCTL_LEASE_DB`` on a group-writable directory) or go
through the service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_LEASE_DB = "MIGCTL_LEASE_DB"
SYSTEM_DB_PATH = Path("/var/lib/migctl/leases.db")
DB_FILE_NAME = "leases.db"


def default_db_path(
    environ: Mapping[str, str] | None = None,
    *,
    euid: int | None = None,
    system_path: Path = SYSTEM_DB_PATH,
    machine_dir: Path | None = None,
) -> Path:
    """The lease database path by the rules in the module docstring (arguments for tests).

    ``machine_dir`` is a simulated machine's own directory (``Backend.files_dir``)."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_LEASE_DB)
    if explicit:
        return Path(explicit).expanduser()
    if machine_dir is not None:
        return machine_dir / DB_FILE_NAME
    effective_uid = os.geteuid() if euid is None else euid
    if effective_uid == 0 and _directory_usable(system_path.parent):
        return system_path
    return _user_state_dir(env) / "migctl" / DB_FILE_NAME


def _directory_usable(directory: Path) -> bool:
    """True when ``directory`` is writable, or missing under a writable existing parent."""
    if directory.is_dir():
        return os.access(directory, os.W_OK | os.X_OK)
    parent = directory.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _user_state_dir(env: Mapping[str, str]) -> Path:
    state_home = env.get("XDG_STATE_HOME")
    if state_home and Path(state_home).is_absolute():
        return Path(state_home)
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "state"
