"""Settings: every path and switch migctl uses, read once at the edge and passed explicitly.

Why this module exists: the CLI, the daemon, Python users and the fleet must find the same files
(lease database, apply journal, simulated machines, CDI spec, the daemon's socket) without
modules reading environment variables behind each other's backs, and a simulated machine must keep
every one of its files under its own directory so that two simulators, or a simulator and a real
GPU, never share one. :meth:`Settings.from_env` is the only reader of ``MIGCTL_*`` variables for
paths; everything below the edge receives a :class:`Settings` (or the one path it needs).

Rules (environment variable, else default; root means effective uid 0):

================  ==================  =====================================================
setting           variable            default
================  ==================  =====================================================
sim               ``MIGCTL_SIM``      none: the real driver
read_only         ``MIGCTL_READ_ONLY``  off
state_dir         ``MIGCTL_STATE_DIR``  root: ``/var/lib/migctl``; else
                                      ``$XDG_STATE_HOME/migctl`` (``~/.local/state/migctl``)
lease_db          ``MIGCTL_LEASE_DB``   ``<state_dir>/leases.db`` when the state directory is
                                      given; else root: ``/var/lib/migctl/leases.db`` when
                                      usable; else ``<user state>/migctl/leases.db``
sim_dir           ``MIGCTL_SIM_DIR``    ``<user state>/migctl/sim``
cdi_path          ``MIGCTL_CDI_PATH``   ``/etc/cdi/migctl.yaml``
catalog_files     ``MIGCTL_CATALOG``    none (``os.pathsep`` separated)
proc_root         ``MIGCTL_PROC_ROOT``  none: ``/`` on a real GPU, nothing on a simulator
socket            ``MIGCTL_SOCKET``     ``/run/migctl/migctl.sock``
url, token        ``MIGCTL_URL``, ``MIGCTL_TOKEN``  none
local             ``MIGCTL_LOCAL``      off
================  ==================  =====================================================

A simulated machine keeps its files in its own directory (``<sim_dir>/<NAME>/``, beside the
simulator's ``NAME.json``): :meth:`Settings.for_machine` moves the journal there, and the lease
database and CDI spec unless they were given explicitly (then they are shared on purpose).
Anyone may import this module; it imports nothing from migctl.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SYSTEM_STATE_DIR = Path("/var/lib/migctl")
SYSTEM_SOCKET = Path("/run/migctl/migctl.sock")
DEFAULT_CDI_PATH = Path("/etc/cdi/migctl.yaml")
LEASE_DB_NAME = "leases.db"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """A boolean environment variable: ``1``/``true``/``yes``/``on`` (any case) is true."""
    return environ.get(name, "").strip().lower() in TRUE_WORDS


@dataclass(frozen=True, slots=True)
class Settings:
    """Where migctl's files are and how it reaches the GPUs (see the module docstring)."""

    state_dir: Path
    lease_db: Path
    sim_dir: Path
    cdi_path: Path = DEFAULT_CDI_PATH
    socket: Path = SYSTEM_SOCKET
    sim: str | None = None
    read_only: bool = False
    local: bool = False
    url: str | None = None
    token: str | None = None
    catalog_files: tuple[Path, ...] = ()
    proc_root: Path | None = None
    explicit: frozenset[str] = frozenset()  # fields given by flag or variable, not defaulted

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        euid: int | None = None,
        overrides: Mapping[str, object] | None = None,
        system_state_dir: Path = SYSTEM_STATE_DIR,
    ) -> Settings:
        """Read the ``MIGCTL_*`` variables once; ``overrides`` (flags) win over them."""
        env = os.environ if environ is None else environ
        root = (os.geteuid() if euid is None else euid) == 0
        user_state = _user_state_dir(env) / "migctl"
        found: dict[str, object] = {}
        _path(found, env, "state_dir", "MIGCTL_STATE_DIR")
        _path(found, env, "lease_db", "MIGCTL_LEASE_DB")
        _path(found, env, "sim_dir", "MIGCTL_SIM_DIR")
        _path(found, env, "cdi_path", "MIGCTL_CDI_PATH")
        _path(found, env, "socket", "MIGCTL_SOCKET")
        _path(found, env, "proc_root", "MIGCTL_PROC_ROOT")
        for name, variable in (("sim", "MIGCTL_SIM"), ("url", "MIGCTL_URL")):
            if env.get(variable):
                found[name] = env[variable]
        if env.get("MIGCTL_TOKEN"):
            found["token"] = env["MIGCTL_TOKEN"]
        if env.get("MIGCTL_CATALOG"):
            parts = env["MIGCTL_CATALOG"].split(os.pathsep)
            found["catalog_files"] = tuple(Path(p) for p in parts if p)
        for name, variable in (("read_only", "MIGCTL_READ_ONLY"), ("local", "MIGCTL_LOCAL")):
            if env_flag(env, variable):
                found[name] = True
        found.update({k: v for k, v in (overrides or {}).items() if v is not None})
        given_state = found.get("state_dir")
        lease_db = (
            Path(str(given_state)) / LEASE_DB_NAME  # a state directory given holds it too
            if given_state is not None
            else _default_lease_db(root, user_state, system_state_dir)
        )
        defaults: dict[str, object] = {
            "state_dir": system_state_dir if root else user_state,
            "lease_db": lease_db,
            "sim_dir": user_state / "sim",
        }
        values = {**defaults, **found}
        return cls(explicit=frozenset(found), **values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes``, which count as given explicitly."""
        explicit = self.explicit | {k for k in changes if k != "explicit"}
        return dataclasses.replace(self, explicit=explicit, **changes)  # type: ignore[arg-type]

    def for_machine(self, files_dir: Path | None) -> Settings:
        """Settings whose defaulted files live in a simulated machine's own directory.

        ``files_dir`` is the machine's directory (``Backend.files_dir``: ``NAME/`` beside the
        simulator's ``NAME.json``); None (real hardware) changes nothing. The journal goes there
        always; the lease database and the CDI spec unless given explicitly.
        """
        if files_dir is None:
            return self
        moved: dict[str, object] = {"state_dir": files_dir}
        if "lease_db" not in self.explicit:
            moved["lease_db"] = files_dir / LEASE_DB_NAME
        if "cdi_path" not in self.explicit:
            moved["cdi_path"] = files_dir / "cdi.yaml"
        return dataclasses.replace(self, **moved)  # type: ignore[arg-type]


def _path(found: dict[str, object], env: Mapping[str, str], name: str, variable: str) -> None:
    value = env.get(variable)
    if value:
        found[name] = Path(value).expanduser()


def _user_state_dir(env: Mapping[str, str]) -> Path:
    state_home = env.get("XDG_STATE_HOME")
    if state_home and Path(state_home).is_absolute():
        return Path(state_home)
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "state"


def _default_lease_db(root: bool, user_state: Path, system_dir: Path) -> Path:
    system = system_dir / LEASE_DB_NAME
    if root and _directory_usable(system.parent):
        return system
    return user_state / LEASE_DB_NAME


def _directory_usable(directory: Path) -> bool:
    """True when ``directory`` is writable, or missing under a writable existing parent."""
    if directory.is_dir():
        return os.access(directory, os.W_OK | os.X_OK)
    parent = directory.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
