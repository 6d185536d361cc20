"""Test helpers for programs that drive migctl: a simulated node, and a real daemon to talk to.

Why this module exists: code written against :class:`migctl.Node` (a scheduler plugin, a
notebook helper, the fleet, migctl's own tests) needs GPUs to test on, and machines with MIG
GPUs to spare are rare. Like httpx's ``MockTransport`` or kopf's testing module, this gives
what a test needs with nothing outside the process tree:

* :func:`simulated_node`: a :class:`~migctl.node.local.LocalNode` on a fresh simulated machine
  (``migctl sim machines`` names them) whose files (simulator state, lease database, journal,
  CDI spec) all live in one directory, removed afterwards unless you gave it;
* :func:`running_daemon`: a real ``python -m migctl serve`` subprocess on a private socket,
  state and simulated machine; it waits until the daemon answers, yields a
  :class:`RunningDaemon` (``.node`` is a :class:`~migctl.node.remote.RemoteNode` connected to
  it, ``.env``/``.settings`` point a CLI subprocess or ``migctl.connect`` at it) that can be
  stopped, killed and started again on the same files, and always tears the process down.

Neither reads the caller's ``MIGCTL_*`` environment: a test never touches a real machine's
leases or journal by accident. The daemon runs as the calling user; that user's primary group
is its admin group unless ``admin_group`` says otherwise, so the test may change layouts.

Layer: the top (beside the CLI); it imports the node API, the settings and the simulator.
"""

from __future__ import annotations

import grp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import migctl
from migctl.settings import Settings

if TYPE_CHECKING:
    import httpx

    from migctl.node.local import LocalNode
    from migctl.node.remote import RemoteNode
    from migctl.sim import SimControl

__all__ = ["RunningDaemon", "free_port", "running_daemon", "simulated_node", "wait_healthy"]

PACKAGE_ROOT = Path(migctl.__file__).resolve().parents[1]  # what ``import migctl`` found
START_TIMEOUT_S = 30.0


@contextmanager
def simulated_node(
    machine: str = "h100-single", *, directory: Path | str | None = None, read_only: bool = False
) -> Iterator[LocalNode]:
    """A LocalNode on the simulated ``machine``, its files in ``directory`` (default: a fresh
    temporary directory, removed on exit; a directory you give is kept). ``read_only``: every
    change is refused (``ReadOnlyError``), as with ``migctl --read-only``.

    >>> with simulated_node("h100-single") as node:               # doctest: +SKIP
    ...     node.set_mode([0], enabled=True)
    ...     node.apply(migctl.SplitTarget(n=7), gpus=[0])
    """
    from migctl.node.local import open_local

    owned = directory is None
    root = Path(tempfile.mkdtemp(prefix="migctl-sim-")) if owned else Path(str(directory))
    try:
        root.mkdir(parents=True, exist_ok=True)
        settings = Settings(
            state_dir=root / "state",
            lease_db=root / "leases.db",
            sim_dir=root,
            sim=machine,
            read_only=read_only,
        )
        with open_local(settings) as node:
            yield node
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    process: subprocess.Popen[bytes],
    socket_path: Path,
    log: Callable[[], str],
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Wait until the daemon ``process`` answers ``/v1/health`` on ``socket_path``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}:\n{log()}")
        try:
            transport = httpx.HTTPTransport(uds=str(socket_path))
            with httpx.Client(transport=transport, base_url="http://migctl", timeout=60) as client:
                if client.get("/v1/health").status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the daemon was not ready after {timeout_s} s:\n{log()}")


class RunningDaemon:
    """One daemon's private files and, while it runs, its process and a RemoteNode to it.

    Files under :attr:`root`: ``d.sock`` (the socket), ``sim/`` (the simulated machine),
    ``state/`` (the daemon's ``service.db``), ``leases.db``, ``daemon.log``.
    """

    def __init__(
        self,
        machine: str = "h100-single",
        *,
        admin_group: str | None = None,
        tcp: bool = True,
        extra_args: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.machine = machine
        self.admin_group = admin_group or grp.getgrgid(os.getegid()).gr_name
        self.extra_args = extra_args
        self.extra_env = dict(extra_env or {})
        self.root = Path(tempfile.mkdtemp(prefix="migctl-daemon-"))
        self.root.chmod(0o755)  # other local users may reach the socket (tests of identity)
        self.socket = self.root / "d.sock"
        self.sim_dir = self.root / "sim"
        self.state_dir = self.root / "state"
        self.lease_db = self.root / "leases.db"
        self.log_path = self.root / "daemon.log"
        self.port = free_port() if tcp else None
        self.process: subprocess.Popen[bytes] | None = None
        self._node: RemoteNode | None = None

    @property
    def socket_path(self) -> Path:
        return self.socket

    @property
    def env(self) -> dict[str, str]:
        """The environment of the daemon, and of a CLI subprocess that should use it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
        path = [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env.update(
            PYTHONPATH=os.pathsep.join(path),
            MIGCTL_SOCKET=str(self.socket),
            MIGCTL_SIM_DIR=str(self.sim_dir),
            MIGCTL_STATE_DIR=str(self.state_dir),
            MIGCTL_LEASE_DB=str(self.lease_db),
        )
        env.update(self.extra_env)
        return env

    @property
    def settings(self) -> Settings:
        """Settings that reach this daemon (``migctl.connect(settings=...)``)."""
        return Settings.from_env(self.env)

    @property
    def node(self) -> RemoteNode:
        """A RemoteNode connected to the daemon over its socket (as this process's user)."""
        if self._node is None:
            if self.process is None:
                raise RuntimeError("the daemon is not running: call start() first")
            self._node = self.connect()
        return self._node

    def connect(self, token: str | None = None) -> RemoteNode:
        """A new RemoteNode: over the socket, or with ``token`` over TCP (when listening)."""
        from migctl.node.open import connect

        if token is not None and self.port is not None:
            url = f"http://127.0.0.1:{self.port}"
            return connect(url, token=token, settings=self.settings)
        return connect(socket=self.socket, token=token, settings=self.settings)

    def command(self) -> list[str]:
        """``python -m migctl --sim MACHINE serve ...`` as this daemon runs it."""
        command = [
            sys.executable, "-m", "migctl", "--sim", self.machine, "serve",
            "--socket", str(self.socket), "--admin-group", self.admin_group,
        ]  # fmt: skip
        if self.port is not None:
            command += ["--tcp", f"127.0.0.1:{self.port}"]
        return [*command, *self.extra_args]

    def start(self) -> RunningDaemon:
        """Start the daemon (again, on the same files) and wait until it answers."""
        if self.process is not None:
            raise RuntimeError("the daemon is already running")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=log)
        try:
            wait_healthy(self.process, self.socket, self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def log(self) -> str:
        """What the daemon wrote to its log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL and wait; the exit status."""
        return self._end(signal.SIGKILL)

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        """Wait for the daemon to end by itself (e.g. killed by an injected fault)."""
        if self.process is None:
            return 0
        code = self.process.wait(timeout=timeout_s)
        self._forget()
        return code

    def _end(self, signum: int) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        self._forget()
        return code

    def _forget(self) -> None:
        self.process = None
        if self._node is not None:
            self._node.close()
            self._node = None

    def cleanup(self) -> None:
        """Kill the daemon if it runs and remove every file."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, token: str | None = None) -> httpx.Client:
        """A raw HTTP client over the socket (as this process's user)."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(
            transport=transport, base_url="http://migctl", headers=headers, timeout=60
        )

    def tcp(self, token: str | None = None) -> httpx.Client:
        """A raw HTTP client over TCP (a token is the only way in there)."""
        import httpx

        if self.port is None:
            raise RuntimeError("this daemon does not listen on TCP (tcp=False)")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=60)

    def sim(self) -> SimControl:
        """The simulator's own panel for this daemon's machine (processes, reboots, faults)."""
        from migctl.catalog import load_catalog
        from migctl.sim import SimControl, open_sim

        return SimControl(open_sim(self.machine, load_catalog(), self.sim_dir))


@contextmanager
def running_daemon(
    machine: str = "h100-single",
    *,
    admin_group: str | None = None,
    tcp: bool = True,
    extra_args: tuple[str, ...] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[RunningDaemon]:
    """A started daemon on the simulated ``machine`` (see :class:`RunningDaemon`); its log is
    printed to stderr when the block fails; the process and its files are always removed.

    >>> with running_daemon("h100-single") as daemon:              # doctest: +SKIP
    ...     daemon.node.set_mode([0], enabled=True)
    ...     daemon.node.apply(migctl.SplitTarget(n=7), gpus=[0])
    """
    daemon = RunningDaemon(
        machine, admin_group=admin_group, tcp=tcp, extra_args=extra_args, extra_env=extra_env
    )
    try:
        yield daemon.start()
    except BaseException:
        print(daemon.log(), file=sys.stderr)
        raise
    finally:
        daemon.cleanup()
