"""The fleet's values to and from their wire schemas (``migctl.schemas.fleet``).

Why this exists: the schemas sit below the fleet in the layers, so they cannot import
``fleet.host``; the conversions of host inventories, devices and workers live here, beside the
values. Dask carries plain dicts, so ``to_msg``/``from_msg`` are the JSON-mode dumps.
Imported by the agent, the controller's agent hosts and the fleet view.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from migctl.fleet.host import Device, HostInventory, SoftDevice, WorkerRecord
from migctl.schemas.base import PlacementOut
from migctl.schemas.fleet import (
    DeviceOut,
    FleetGpuOut,
    HostInventoryOut,
    SoftDeviceOut,
    WorkerRecordOut,
)

M = TypeVar("M", bound=BaseModel)


def to_msg(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def from_msg(kind: type[M], raw: object) -> M:
    return kind.model_validate(raw)


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        uuid=device.uuid,
        gpu=device.gpu,
        gi_id=device.gi_id,
        profile=device.profile,
        placement=PlacementOut.of(device.placement),
        busy=device.busy,
        worker=device.worker,
    )


def device_in(out: DeviceOut) -> Device:
    return Device(
        out.uuid, out.gpu, out.gi_id, out.profile, out.placement.value(), out.busy, out.worker
    )


def inventory_out(inventory: HostInventory) -> HostInventoryOut:
    models = {gpu.model.key: gpu.model for gpu in inventory.gpus}
    return HostInventoryOut(
        host=inventory.host,
        description=inventory.description,
        models=models,
        gpus=[FleetGpuOut.of(gpu) for gpu in inventory.gpus],
        devices=[device_out(d) for d in inventory.devices],
        workers=[
            WorkerRecordOut(name=w.name, uuid=w.uuid, pid=w.pid, started_at=w.started_at)
            for w in inventory.workers
        ],
        soft=[soft_out(d) for d in inventory.soft],
    )


def soft_out(device: SoftDevice) -> SoftDeviceOut:
    return SoftDeviceOut(
        uuid=device.uuid,
        gpu=device.gpu,
        parent_uuid=device.parent_uuid,
        percent=device.percent,
        memory_limit_mib=device.memory_limit_mib,
        worker=device.worker,
        held=device.held,
    )


def soft_in(out: SoftDeviceOut) -> SoftDevice:
    return SoftDevice(
        out.uuid, out.gpu, out.parent_uuid, out.percent, out.memory_limit_mib, out.worker, out.held
    )


def inventory_in(out: HostInventoryOut) -> HostInventory:
    """The inventory back; a GPU whose model the report does not carry is left out."""
    gpus = tuple(g.value(out.host, out.models) for g in out.gpus if g.model in out.models)
    return HostInventory(
        out.host,
        gpus,
        tuple(device_in(d) for d in out.devices),
        tuple(WorkerRecord(w.name, w.uuid, w.pid, w.started_at) for w in out.workers),
        out.description,
        tuple(soft_in(d) for d in out.soft),
    )
