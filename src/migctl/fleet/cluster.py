"""``MigCluster``: a whole fleet in one line, and nothing left behind when it closes.

Why this exists: to try the fleet, test it, or run a demo, a user needs a scheduler with the
controller, N hosts each with its own identity and files (and, if asked, its own daemon), an
agent per host and a worker per MIG device; and every one of those processes gone afterwards::

    from migctl.dask import MigCluster, mig
    with MigCluster(4) as cluster, cluster.client() as client:
        client.submit(train, resources=mig("3g.40gb")).result()

Hosts: a number (that many simulated hosts with one H100 each), ``SimHost`` values (name,
model, GPUs, starting layout, devices held by a live process), or daemon URLs of real hosts
(``unix:///run/migctl/migctl.sock``: an agent is started for each, on this machine). Each
simulated host is a machine file named after the host (so its GPU and MIG UUIDs differ from
every other host's) whose journal and lease database live in the machine's own directory; with
``daemons=True`` each also gets its own ``migctl serve`` on its own socket, with its own state
directory (``service.db``, whose desired layout a daemon re-applies when it starts), and the agent
drives it through the Node API (``--node``).

Processes: ``dask scheduler --preload migctl.fleet.plugin``, the daemons, ``migctl fleet agent``
per host; each in its own session, logging to the work directory. ``close()`` stops the agents
(they stop their workers), kills any worker group an agent left (their process ids come from the
agents' reports), stops the daemons and the scheduler, SIGKILLs whatever outlived its grace, and
removes the work directory it made. Imports ``distributed`` on use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migctl.errors import InvalidInputError, InvalidStateError, MigctlError
from migctl.fleet.policy import Policy
from migctl.fleet.simhosts import SimHost, hold, prepare
from migctl.schemas.fleet import FleetStatusOut

PYTHON = sys.executable
GRACE_S = 15.0
MAX_HOSTS = 64
HOLDER = "import time\nwhile True: time.sleep(3600)"  # a live process on a busy slice


@dataclass
class _Child:
    role: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str]
    env: dict[str, str]
    stopped: bool = False  # killed on purpose (``kill``): not a failure


@dataclass
class MigCluster:
    """See the module docstring. ``policy``: the controller's; ``heartbeat_s``: the agents'."""

    hosts: int | Sequence[SimHost | str] = 4
    policy: Policy = field(default_factory=lambda: Policy(cycle_s=0.5, stop_grace_s=5))
    daemons: bool = False
    heartbeat_s: float = 0.5
    workdir: Path | None = None
    start_timeout_s: float = 120.0
    scheduler_address: str = ""
    children: list[_Child] = field(default_factory=list)
    _own_dir: bool = False
    _specs: list[SimHost | str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._specs = _host_specs(self.hosts)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="migctl-fleet-"))
            self._own_dir = True
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # starting -------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
        env["MIGCTL_SIM_DIR"] = str(self.root / "sim")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, role: str, argv: list[str], env: dict[str, str] | None = None) -> _Child:
        log = self.root / f"{role}.log"
        env = env or self.env()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = _Child(role, process, log, argv, env)
        self.children.append(child)
        return child

    def child(self, role: str) -> _Child:
        found = [c for c in self.children if c.role == role]
        if not found:
            known = ", ".join(c.role for c in self.children)
            raise InvalidInputError(f"this cluster has no {role}", hint=f"it has: {known}")
        return found[-1]

    def kill(self, role: str) -> None:
        """SIGKILL a process of the fleet (``scheduler``, ``agent-NAME``, ``daemon-NAME``)."""
        child = self.child(role)
        child.stopped = True
        _kill_group(child.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(10)

    def restart(self, role: str) -> None:
        """Start a process of the fleet again as it was first started (killing it first if it
        still runs); a scheduler comes back on the same address."""
        old = self.child(role)
        if old.process.poll() is None:
            self.kill(role)
        self.children.remove(old)
        argv = list(old.argv)
        if role == "scheduler":
            argv[argv.index("--port") + 1] = self.scheduler_address.rsplit(":", 1)[1]
        self._spawn(role, argv, old.env)

    def exited(self) -> list[str]:
        """The fleet's processes that ended by themselves (not killed through ``kill``)."""
        return [c.role for c in self.children if not c.stopped and c.process.poll() is not None]

    def _start(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        self.scheduler_address = self._start_scheduler(deadline)
        urls: dict[str, str | None] = {}
        for spec in self._specs:
            if isinstance(spec, str):
                urls[f"node-{len(urls)}"] = spec
                continue
            machine, held = prepare(spec, self.root / "sim")
            for uuid in held:
                holder = self._spawn(f"holder-{uuid}", [PYTHON, "-c", HOLDER])
                hold(machine, self.root / "sim", uuid, holder.process.pid)
            urls[spec.name] = self._start_daemon(spec, deadline) if self.daemons else None
        for index, (name, url) in enumerate(urls.items()):
            spec = self._specs[index]
            self._start_agent(name, spec if isinstance(spec, SimHost) else None, url)
        self.wait(lambda view: len([h for h in view.hosts if not h.error]) == len(urls), deadline)

    def _start_scheduler(self, deadline: float) -> str:
        info = self.root / "scheduler.json"
        policy = self.policy
        self._spawn(
            "scheduler",
            [
                PYTHON, "-m", "distributed.cli.dask_scheduler",
                "--host", "127.0.0.1", "--port", "0",
                "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                "--scheduler-file", str(info),
                "--preload", "migctl.fleet.plugin",
                *(f"--fleet-policy={setting}" for setting in policy.settings()),
            ],
        )  # fmt: skip
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError, ValueError, KeyError):
                return str(json.loads(info.read_text())["address"])
            time.sleep(0.1)
        raise self._failure("the scheduler did not start in time")

    def _start_daemon(self, spec: SimHost, deadline: float) -> str:
        from migctl.client.http import DaemonClient

        socket_path = self.root / f"{spec.name}.sock"
        machine = self.root / "sim" / f"{spec.name}.yaml"
        state = self.root / "state" / spec.name  # its service.db: never the system's, or shared
        argv = [PYTHON, "-m", "migctl", "--sim", str(machine), "serve"]
        argv += ["--socket", str(socket_path), "--state-dir", str(state)]
        self._spawn(f"daemon-{spec.name}", argv)
        client = DaemonClient(socket_path=socket_path)
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                if socket_path.exists() and client.reachable():
                    return f"unix://{socket_path}"
                time.sleep(0.1)
        finally:
            client.close()
        raise self._failure(f"the daemon of {spec.name} did not start in time")

    def _start_agent(self, name: str, spec: SimHost | None, url: str | None) -> None:
        argv = [PYTHON, "-m", "migctl"]
        if url is None and spec is not None:
            argv += ["--sim", str(self.root / "sim" / f"{spec.name}.yaml")]
        argv += ["fleet", "agent", "--scheduler", self.scheduler_address, "--name", name]
        argv += [
            "--heartbeat",
            str(self.heartbeat_s),
            "--stop-grace",
            str(self.policy.stop_grace_s),
        ]
        if url is not None:
            argv += ["--node", url]
        for share in spec.soft_shares if spec is not None else ():
            argv += ["--soft-share", str(share)]
        self._spawn(f"agent-{name}", argv)

    def _check_alive(self) -> None:
        for child in self.children:
            if not child.stopped and child.process.poll() is not None:
                raise self._failure(f"{child.role} exited with {child.process.returncode}")

    def _failure(self, what: str) -> InvalidStateError:
        logs = "; ".join(f"{c.role}: {c.log}" for c in self.children)
        return InvalidStateError(f"the fleet did not start: {what}", hint=f"see the logs ({logs})")

    # using ----------------------------------------------------------------------------------

    def client(self, **options: Any) -> Any:
        """A ``distributed.Client`` of this fleet's scheduler."""
        from distributed import Client

        return Client(self.scheduler_address, **options)

    def status(self, timeout_s: float = 10.0) -> FleetStatusOut:
        from migctl.fleet.service import read_status

        return read_status(self.scheduler_address, timeout_s)

    def wait(self, ready: Any, deadline: float, *, check: bool = True) -> FleetStatusOut:
        """Poll the fleet view until ``ready(view)`` (or fail at ``deadline``); ``check``: fail
        as soon as a process of the fleet ended by itself."""
        last = ""
        while time.monotonic() < deadline:
            if check:
                self._check_alive()
            try:
                view = self.status()
                if ready(view):
                    return view
            except (MigctlError, OSError) as error:  # not reachable, or no view yet
                last = str(error)
            time.sleep(0.2)
        raise self._failure(f"the fleet was not ready in time {last}".strip())

    def wait_for_workers(
        self, count: int | None = None, timeout_s: float = 120.0
    ) -> FleetStatusOut:
        """Until ``count`` workers (soft ones included; default: one per idle MIG device) run."""

        def ready(view: FleetStatusOut) -> bool:
            slices = [s for h in view.hosts for g in h.gpus for s in g.slices]
            seen = [s.worker for s in slices] + [d.worker_view for h in view.hosts for d in h.soft]
            running = sum(1 for w in seen if w is not None and w.status == "running")
            wanted = count if count is not None else sum(1 for s in slices if not s.busy)
            return running >= wanted

        return self.wait(ready, time.monotonic() + timeout_s)

    # stopping -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything this cluster started (see the module docstring)."""
        workers = self._worker_pids()
        agents = [c for c in self.children if c.role.startswith("agent-")]
        _stop(agents, GRACE_S + self.policy.stop_grace_s)
        for pid in workers:
            _kill_group(pid)
        _stop([c for c in self.children if c not in agents], GRACE_S)
        self.children.clear()
        if self._own_dir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _worker_pids(self) -> list[int]:
        if not self.scheduler_address or not any(c.role == "scheduler" for c in self.children):
            return []
        try:
            view = self.status(timeout_s=5.0)
        except (MigctlError, OSError):  # closing: whatever is reachable
            return []
        seen = [s.worker for h in view.hosts for g in h.gpus for s in g.slices]
        seen += [d.worker_view for h in view.hosts for d in h.soft]
        return [w.pid for w in seen if w is not None and w.pid is not None]

    def __enter__(self) -> MigCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_specs(hosts: int | Sequence[SimHost | str]) -> list[SimHost | str]:
    if isinstance(hosts, int):
        if not 1 <= hosts <= MAX_HOSTS:
            raise InvalidInputError(
                f"a MigCluster has 1 to {MAX_HOSTS} hosts, not {hosts}", hint="e.g. MigCluster(4)"
            )
        return [SimHost(f"host-{i}") for i in range(hosts)]
    specs = list(hosts)
    if not 1 <= len(specs) <= MAX_HOSTS:
        raise InvalidInputError(f"a MigCluster has 1 to {MAX_HOSTS} hosts, not {len(specs)}")
    names = [s.name for s in specs if isinstance(s, SimHost)]
    if len(set(names)) != len(names):
        raise InvalidInputError("two simulated hosts have the same name", hint="name each once")
    return specs


def _stop(children: list[_Child], grace_s: float) -> None:
    """SIGTERM each child's group, then SIGKILL what is left after ``grace_s``."""
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.1, deadline - time.monotonic()))
        _kill_group(child.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(5)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
