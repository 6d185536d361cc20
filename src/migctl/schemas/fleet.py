"""The fleet on the wire: host inventories, reshape targets, agent orders, the fleet view.

Why this module exists: a node agent and the fleet controller live in different processes
(often machines) and talk through Dask's comms, which carry msgpack-able dicts; ``migctl fleet
status -o json`` and the dashboard's fleet page read the controller's view. Each of those has
one shape, here. Planner values (``FleetGpu``, ``GpuTarget``) convert with ``of``/``value``;
the fleet's own values (``fleet.host``) convert in ``migctl.fleet.wire`` (the fleet sits above
this layer). Every list is bounded, so a peer cannot make the controller hold a huge report.

Layer: beside ``migctl.model``; imports model, planner values and the other schemas only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from migctl.model import GpuModel
from migctl.planner.fleet_model import FleetGpu, FleetInstance, GpuTarget, NewInstance
from migctl.schemas.base import PlacementOut, Wire
from migctl.schemas.errors import ErrorOut

MAX_GPUS_PER_HOST = 64
MAX_DEVICES_PER_HOST = MAX_GPUS_PER_HOST * 8
Name = Annotated[str, Field(min_length=1, max_length=200)]


class FleetInstanceOut(Wire):
    """A GPU instance as the fleet planner sees it."""

    profile: str = Field(min_length=1, max_length=40)
    placement: PlacementOut
    busy: bool
    gi_id: int | None = None

    @classmethod
    def of(cls, instance: FleetInstance) -> FleetInstanceOut:
        return cls(
            profile=instance.profile,
            placement=PlacementOut.of(instance.placement),
            busy=instance.busy,
            gi_id=instance.gi_id,
        )

    def value(self) -> FleetInstance:
        return FleetInstance(self.profile, self.placement.value(), self.busy, self.gi_id)


class FleetGpuOut(Wire):
    """One MIG-enabled GPU of a host: its model (by key) and its instances."""

    index: int = Field(ge=0, lt=MAX_GPUS_PER_HOST)
    model: str = Field(min_length=1, max_length=80, description="the GPU model's key")
    instances: list[FleetInstanceOut] = Field(max_length=8)

    @classmethod
    def of(cls, gpu: FleetGpu) -> FleetGpuOut:
        return cls(
            index=gpu.index,
            model=gpu.model.key,
            instances=[FleetInstanceOut.of(i) for i in gpu.instances],
        )

    def value(self, host: str, models: dict[str, GpuModel]) -> FleetGpu:
        return FleetGpu(
            host, self.index, models[self.model], tuple(i.value() for i in self.instances)
        )


class DeviceOut(Wire):
    """A MIG device of a host and the fleet worker on it, if any."""

    uuid: str = Field(min_length=4, max_length=80)
    gpu: int = Field(ge=0, lt=MAX_GPUS_PER_HOST)
    gi_id: int
    profile: str = Field(min_length=1, max_length=40)
    placement: PlacementOut
    busy: bool
    worker: str | None = Field(None, max_length=200)


class SoftDeviceOut(Wire):
    """A soft device (an MPS share) of a GPU without MIG: the fleet never reshapes it."""

    uuid: str = Field(min_length=4, max_length=80)
    gpu: int = Field(ge=0, lt=MAX_GPUS_PER_HOST)
    parent_uuid: str = Field(min_length=4, max_length=80)
    percent: int = Field(ge=1, le=100)
    memory_limit_mib: int = Field(ge=0)
    worker: str | None = Field(None, max_length=200)
    held: bool = False
    isolation: Literal["soft"] = Field(
        "soft", description="no fault or memory-bandwidth isolation (CUDA MPS)"
    )


class WorkerRecordOut(Wire):
    """A fleet worker a host runs."""

    name: Name
    uuid: str = Field(min_length=4, max_length=80)
    pid: int | None = None
    started_at: float


class HostInventoryOut(Wire):
    """What an agent reports: its GPUs (with their live models), devices and workers."""

    host: Name
    seq: int = Field(0, ge=0, description="the agent's count of inventories taken: newer is larger")
    description: str = Field("", max_length=400)
    models: dict[str, GpuModel] = Field(default_factory=dict, max_length=MAX_GPUS_PER_HOST)
    gpus: list[FleetGpuOut] = Field(default_factory=list, max_length=MAX_GPUS_PER_HOST)
    devices: list[DeviceOut] = Field(default_factory=list, max_length=MAX_DEVICES_PER_HOST)
    workers: list[WorkerRecordOut] = Field(default_factory=list, max_length=MAX_DEVICES_PER_HOST)
    soft: list[SoftDeviceOut] = Field(default_factory=list, max_length=MAX_DEVICES_PER_HOST)


class NewInstanceOut(Wire):
    profile: str = Field(min_length=1, max_length=40)
    placement: PlacementOut
    demand: int = Field(ge=0)


class ServedOut(Wire):
    instance: FleetInstanceOut
    demand: int = Field(ge=0)


class GpuTargetOut(Wire):
    """What one GPU should become (``planner.fleet_model.GpuTarget``)."""

    host: Name
    index: int = Field(ge=0, lt=MAX_GPUS_PER_HOST)
    model: str = Field(min_length=1, max_length=80)
    kept: list[FleetInstanceOut] = Field(max_length=8)
    destroyed: list[FleetInstanceOut] = Field(max_length=8)
    created: list[NewInstanceOut] = Field(max_length=8)
    serves: list[ServedOut] = Field(default_factory=list, max_length=8)

    @classmethod
    def of(cls, target: GpuTarget) -> GpuTargetOut:
        return cls(
            host=target.host,
            index=target.index,
            model=target.model_key,
            kept=[FleetInstanceOut.of(i) for i in target.kept],
            destroyed=[FleetInstanceOut.of(i) for i in target.destroyed],
            created=[
                NewInstanceOut(
                    profile=n.profile, placement=PlacementOut.of(n.placement), demand=n.demand
                )
                for n in target.created
            ],
            serves=[ServedOut(instance=FleetInstanceOut.of(i), demand=d) for i, d in target.serves],
        )

    def value(self) -> GpuTarget:
        return GpuTarget(
            self.host,
            self.index,
            self.model,
            tuple(i.value() for i in self.kept),
            tuple(i.value() for i in self.destroyed),
            tuple(NewInstance(n.profile, n.placement.value(), n.demand) for n in self.created),
            tuple((s.instance.value(), s.demand) for s in self.serves),
        )


# agent orders and their results --------------------------------------------------------------


class ApplyOrder(Wire):
    kind: Literal["apply"] = "apply"
    targets: list[GpuTargetOut] = Field(min_length=1, max_length=MAX_GPUS_PER_HOST)


class StartOrder(Wire):
    kind: Literal["start"] = "start"
    device: DeviceOut
    scheduler: str = Field(min_length=1, max_length=400)


class StopOrder(Wire):
    kind: Literal["stop"] = "stop"
    worker: Name
    grace_s: float = Field(gt=0, le=3600)


class Order(Wire):
    """One order from the controller to an agent; refused by the agent past ``deadline``."""

    id: int = Field(ge=1)
    host: Name
    deadline: float = Field(description="epoch seconds")
    body: ApplyOrder | StartOrder | StopOrder = Field(discriminator="kind")


class OrderResult(Wire):
    """An agent's answer: the inventory after an apply, the worker started, or the error."""

    id: int = Field(ge=1)
    ok: bool
    inventory: HostInventoryOut | None = None
    worker: str | None = Field(None, max_length=200)
    error: ErrorOut | None = None


class AgentEvent(Wire):
    """Something an agent saw by itself: a worker that died, a node that went away."""

    kind: Literal[
        "worker-died",
        "node-unavailable",
        "node-back",
        "node-recovered",
        "agent-started",
        "worker-adopted",
        "soft-worker-started",
        "soft-worker-failed",
    ]
    at: float
    detail: dict[str, str | int | float | None] = Field(default_factory=dict, max_length=16)


# the fleet view (``migctl fleet status -o json``, the dashboard's fleet page) ---------------


class TaskOut(Wire):
    key: str = Field(max_length=400)
    state: str = Field(max_length=40)
    resources: dict[str, float] = Field(default_factory=dict, max_length=16)


class WorkerOut(Wire):
    name: Name
    pid: int | None = Field(None, description="its process group leader (`migctl run`)")
    address: str | None = Field(None, max_length=400)
    status: str = Field(max_length=40, description="the scheduler's word, or 'starting'")
    processing: int = 0
    tasks: list[TaskOut] = Field(default_factory=list, max_length=64)


class SliceOut(Wire):
    profile: str = Field(max_length=40)
    placement: PlacementOut
    gi_id: int | None = None
    uuid: str | None = Field(None, max_length=80)
    busy: bool
    worker: WorkerOut | None = None


class SoftSliceOut(SoftDeviceOut):
    """A soft device in the fleet view, with its worker as the scheduler sees it."""

    worker_view: WorkerOut | None = None


class GpuViewOut(Wire):
    index: int
    model: str = Field(max_length=80)
    slices: list[SliceOut] = Field(max_length=8)
    reshaping: bool = False


class HostViewOut(Wire):
    name: Name
    description: str = Field("", max_length=400)
    seen_s_ago: float | None = None
    error: str | None = Field(None, max_length=2000)
    gpus: list[GpuViewOut] = Field(default_factory=list, max_length=MAX_GPUS_PER_HOST)
    soft: list[SoftSliceOut] = Field(
        default_factory=list, max_length=MAX_DEVICES_PER_HOST, description="isolation soft"
    )


class ReshapeOut(Wire):
    id: int
    host: Name
    gpu: int | None = None
    phase: str = Field(max_length=40)
    draining: list[str] = Field(default_factory=list)
    workers: list[str] = Field(default_factory=list)
    age_s: float


class ControllerOut(Wire):
    running: bool
    mode: str = Field(max_length=40, description="plugin or external")
    holder: str | None = Field(None, max_length=400)
    cycles: int = 0
    last_cycle_s: float = 0.0
    reshapes_done: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="decisions by kind")
    tasks_rerun: int = 0
    tasks_interrupted: int = 0


class FleetStatusOut(Wire):
    """The whole fleet as the controller sees it: every host, GPU, slice, worker and task."""

    scheduler: str = Field(max_length=400)
    controller: ControllerOut
    hosts: list[HostViewOut] = Field(default_factory=list)
    waiting: list[TaskOut] = Field(default_factory=list, description="tasks no worker can run")
    reshapes: list[ReshapeOut] = Field(default_factory=list)
    decisions: list[dict[str, object]] = Field(default_factory=list, max_length=1000)
