"""The simulated MPS control daemon's state and rules: servers per user, clients, limits, faults.

Why this exists: soft devices must be tested on every path without a GPU, so
``migctl.sim.mps_control`` stands in for ``nvidia-cuda-mps-control`` and
``migctl.sim.mps_client`` for a CUDA program. Both are separate processes; they share this
state, a JSON file under the daemon's pipe directory (each simulated daemon has its own;
nothing is shared between them), changed under an exclusive ``flock`` and replaced
atomically. The rules follow NVIDIA's MPS documentation:

* one server at a time per control daemon, started for the user of the first client; a
  client of another user waits (queued) until every client of that server has exited, then
  a server for the next user starts (the users take turns, never side by side);
* each client has an active-thread percentage (its own, or the daemon's default) and a
  pinned memory limit; an allocation past the limit, or past the device's memory, fails;
* a fatal fault in one client ends every client of its server; the faulted server refuses
  new clients until all of its clients have exited, then it is gone;
* ``quit`` ends the daemon; clients still attached lose their server.

Server IDs are simulated numbers, not processes. Layer: simulator (no migctl.mps import).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from migctl.errors import InvalidInputError
from migctl.files import atomic_write
from migctl.host import is_alive

STATE_FILE = "migctl-sim-mps.json"
LOCK_FILE = "migctl-sim-mps.lock"
PID_FILE = "nvidia-cuda-mps-control.pid"
DEFAULT_MEMORY_MIB = 81559  # an H100 80GB HBM3, as CUDA reports it
DEFAULT_SM_COUNT = 132
FIRST_SERVER_ID = 700001
ACTIVE, FAULTED, DRAINING = "ACTIVE", "FAULTED", "DRAINING"
_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_LIMIT = re.compile(r"(\d+)=(\d+)([KMGT]?)B?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SimClient(_Model):
    pid: int
    start_time: int | None
    uid: int
    percent: float
    limit_mib: int | None = None
    allocated_mib: int = 0


class SimServer(_Model):
    server_id: int
    uid: int
    status: str = ACTIVE
    clients: list[SimClient] = []
    fault: str = ""


class SimMps(_Model):
    """One simulated control daemon, its device and its servers."""

    daemon_pid: int | None = None
    daemon_start: int | None = None
    device: str = ""  # CUDA_VISIBLE_DEVICES the daemon was started with
    machine: str = ""  # the state file of the machine whose NVML shows the clients (mps_nvml)
    memory_mib: int = DEFAULT_MEMORY_MIB
    sm_count: int = DEFAULT_SM_COUNT
    default_percent: float = 100.0
    default_limit_mib: int | None = None
    next_server_id: int = FIRST_SERVER_ID
    servers: list[SimServer] = []
    queued: list[SimClient] = []
    quitting: bool = False

    def daemon_alive(self) -> bool:
        return self.daemon_pid is not None and is_alive(self.daemon_pid, self.daemon_start)

    def server(self, server_id: int) -> SimServer | None:
        return next((s for s in self.servers if s.server_id == server_id), None)

    def client(self, pid: int) -> tuple[SimServer, SimClient] | None:
        for server in self.servers:
            for client in server.clients:
                if client.pid == pid:
                    return server, client
        return None


class MpsStore:
    """The state file of the simulated daemon whose pipe directory is ``pipe_dir``."""

    def __init__(self, pipe_dir: Path) -> None:
        self.pipe_dir = pipe_dir
        self.path = pipe_dir / STATE_FILE

    def read(self) -> SimMps:
        try:
            return self._parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SimMps()

    def _parse(self, text: str) -> SimMps:
        try:
            return SimMps.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidInputError(
                f"simulated MPS state {self.path} is unreadable: {exc.errors()[0]['msg']}",
                hint=f"quit the simulated daemon and remove {self.path}",
            ) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SimMps]:
        """The state, locked; written back (atomically) when the block ends without error."""
        self.pipe_dir.mkdir(parents=True, exist_ok=True)
        with open(self.pipe_dir / LOCK_FILE, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self.read()
                yield state
                atomic_write(self.path, state.model_dump_json(indent=1))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def parse_limit(text: str) -> int:
    """``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` for device 0 in MiB: ``0=12G`` -> 12288.

    ValueError for anything a CUDA client would refuse at initialization.
    """
    limits: dict[int, int] = {}
    for item in text.split(","):
        match = _LIMIT.fullmatch(item.strip().upper())
        if match is None:
            raise ValueError(f"cannot read pinned memory limit {item.strip()!r}")
        ordinal, amount, unit = int(match.group(1)), int(match.group(2)), match.group(3)
        limits[ordinal] = int(amount * _UNITS[unit])
    if 0 not in limits or limits[0] <= 0:
        raise ValueError(f"no pinned memory limit above 0 for device 0 in {text!r}")
    return limits[0]


def reap(state: SimMps) -> None:
    """Drop clients whose process is gone, end servers that have wound down, and admit
    queued clients (the next user's server starts once the previous one is gone)."""
    for server in state.servers:
        server.clients = [c for c in server.clients if is_alive(c.pid, c.start_time)]
    state.queued = [c for c in state.queued if is_alive(c.pid, c.start_time)]
    for _ in range(len(state.queued) + 2):
        state.servers = [s for s in state.servers if s.clients or s.status == ACTIVE]
        if not state.servers and state.queued:
            _start_server(state, state.queued[0].uid)
        if not state.servers:
            return
        server = state.servers[0]
        if server.status == FAULTED:
            return
        if any(c.uid != server.uid for c in state.queued):
            server.status = DRAINING  # serves its clients to the end, then makes way
        if server.status == ACTIVE:
            server.clients.extend(state.queued)
            state.queued = []
            return
        if server.clients:
            return


def _start_server(state: SimMps, uid: int) -> None:
    """A server for ``uid``, with every queued client of that user."""
    server = SimServer(server_id=state.next_server_id, uid=uid)
    state.next_server_id += 1
    server.clients = [c for c in state.queued if c.uid == uid]
    state.queued = [c for c in state.queued if c.uid != uid]
    state.servers.append(server)


def connect(state: SimMps, client: SimClient) -> str:
    """A client asks to join: ``attached``, ``queued`` or ``refused: <why>``."""
    reap(state)
    if state.servers and state.servers[0].status == FAULTED:
        return "refused: the MPS server is shutting down after a fatal fault in a client"
    state.queued.append(client)
    reap(state)
    return "attached" if state.client(client.pid) is not None else "queued"


def fault(state: SimMps, pid: int, reason: str) -> int:
    """A fatal fault in client ``pid``: its server and all of its clients fail. Their count."""
    found = state.client(pid)
    if found is None:
        return 0
    server, _ = found
    server.status = FAULTED
    server.fault = f"fatal fault in client {pid}: {reason}"
    return len(server.clients)


def allocate(state: SimMps, pid: int, mib: int) -> str:
    """Client ``pid`` allocates ``mib`` more: ``ok`` or ``out of memory: <why>``."""
    found = state.client(pid)
    if found is None:
        return "out of memory: not a client of this server"
    _, client = found
    limit = client.limit_mib if client.limit_mib is not None else state.default_limit_mib
    if limit is not None and client.allocated_mib + mib > limit:
        return (
            f"out of memory: {client.allocated_mib + mib} MiB is past the pinned limit {limit} MiB"
        )
    used = sum(c.allocated_mib for s in state.servers for c in s.clients)
    if used + mib > state.memory_mib:
        return f"out of memory: the device has {state.memory_mib - used} MiB free"
    client.allocated_mib += mib
    return "ok"


def sms_seen(state: SimMps, percent: float) -> int:
    """SMs a client with ``percent`` sees: whole TPCs (2 SMs), rounded down, at least one."""
    return max(1, int(state.sm_count // 2 * percent // 100)) * 2
