"""What the fleet controller needs from one host: a narrow protocol and its values.

Why this exists: the controller drives a simulated host in a test, a host's agent over Dask's
comms, and a host it opened itself the same way. This is all it asks:

* ``inventory()``: every MIG-enabled GPU with its instances (placements, busy or not), the
  MIG device of each instance, and which fleet worker holds it;
* ``apply(targets)``: make the listed GPUs match their targets, never destroying a busy
  instance (a busy one in the way is an error, nothing is forced); returns the devices the
  GPUs then hold;
* ``start_worker(device, scheduler)`` / ``stop_worker(name, grace_s)``: one Dask worker per
  MIG device, holding the device's lease; stopping ends its whole process group.

Every call is a coroutine: a host may be a ``Node`` in this process (``fleet.node_host``) or an
agent on another machine (``fleet.agent_host``). Values only (plus the Protocol); imports the
planner's fleet values. Anyone may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from migctl.model import Placement
from migctl.planner.fleet_model import FleetGpu, GpuTarget


@dataclass(frozen=True, slots=True)
class Device:
    """A MIG device (one GPU instance with one compute instance spanning it)."""

    uuid: str  # MIG-<uuid>
    gpu: int
    gi_id: int
    profile: str
    placement: Placement
    busy: bool  # processes on it, or a lease not held by a fleet worker of this host
    worker: str | None = None  # the fleet worker holding it, by worker name


@dataclass(frozen=True, slots=True)
class SoftDevice:
    """A soft device (an MPS share) of a GPU without MIG: never reshaped by the fleet;
    ``isolation`` soft (no fault or memory-bandwidth isolation)."""

    uuid: str  # SOFT-...
    gpu: int
    parent_uuid: str
    percent: int
    memory_limit_mib: int
    worker: str | None = None  # the fleet worker holding it
    held: bool = False  # leased (by a fleet worker or anyone else)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A fleet worker a host runs: its name, device, process (None in-process) and start."""

    name: str
    uuid: str
    pid: int | None
    started_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class HostInventory:
    host: str
    gpus: tuple[FleetGpu, ...]  # MIG-enabled GPUs; an instance is busy as ``Device.busy``
    devices: tuple[Device, ...]
    workers: tuple[WorkerRecord, ...] = ()
    description: str = ""  # the node's own words (``simulated ...``, ``the daemon at ...``)
    soft: tuple[SoftDevice, ...] = ()  # soft devices of GPUs without MIG (never planned)

    def device_at(self, gpu: int, placement: Placement) -> Device | None:
        return next((d for d in self.devices if d.gpu == gpu and d.placement == placement), None)


class Host(Protocol):
    """The host operations the fleet controller uses (see the module docstring)."""

    @property
    def name(self) -> str: ...

    async def inventory(self) -> HostInventory: ...

    async def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory: ...

    async def start_worker(self, device: Device, scheduler: str) -> str: ...

    async def stop_worker(self, name: str, grace_s: float) -> None: ...
