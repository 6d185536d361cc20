"""What the fleet controller reads and does inside the Dask scheduler.

Why this exists: the controller runs either inside the scheduler (a ``SchedulerPlugin``)
or as its own process (a client); both call the same functions here, with the scheduler
passed as ``dask_scheduler`` (``Client.run_on_scheduler``'s convention), through a link:

* ``read_snapshot``: demand (the resource restrictions of tasks in ``Scheduler.unrunnable``
  and of tasks waiting on a worker behind the one it runs: resource-restricted tasks are
  never queued on the scheduler, they wait on workers) and every worker's state;
* ``retire``: ``Scheduler.retire_workers`` for the two drain phases;
* ``executing_count``: asks the worker itself (``WorkerState.executing_count``);
* ``reopen``: undo a first drain phase (the worker runs tasks again);
* ``publish``: ``Scheduler.log_event`` on the fleet's topic.

Never ``Worker.set_resources``: it does not wake waiting tasks and corrupts the
scheduler's used-resource counts (dask/distributed#6677). Imports ``distributed`` lazily.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

from migctl.fleet.resources import RestrictionKey, is_gpu_request, restriction_key

TOPIC = "migctl-fleet"


@dataclass(frozen=True, slots=True)
class WorkerView:
    address: str
    name: str
    status: str  # running, paused, closing_gracefully, ...
    resources: tuple[tuple[str, float], ...]
    processing: int  # tasks assigned to it (running or waiting there)
    holds: int  # results in its memory
    backlog: tuple[RestrictionKey, ...]  # GPU tasks waiting there behind the running one


@dataclass(frozen=True, slots=True)
class Snapshot:
    unrunnable: tuple[RestrictionKey, ...]  # GPU tasks no worker can run
    workers: tuple[WorkerView, ...]

    def demand(self) -> list[RestrictionKey]:
        return [*self.unrunnable, *(k for w in self.workers for k in w.backlog)]


def _worker_view(ws: Any) -> WorkerView:
    gpu_tasks = sorted(
        (
            ts
            for ts in ws.processing
            if ts.resource_restrictions and is_gpu_request(ts.resource_restrictions)
        ),
        key=lambda ts: ts.priority or (),
    )
    waiting = gpu_tasks[ws.nthreads :]
    return WorkerView(
        ws.address,
        str(ws.name),
        ws.status.name,
        tuple(sorted((k, float(v)) for k, v in ws.resources.items())),
        len(ws.processing),
        len(ws.has_what),
        tuple(restriction_key(ts.resource_restrictions) for ts in waiting),
    )


def read_snapshot(dask_scheduler: Any) -> Snapshot:
    unrunnable = tuple(
        restriction_key(ts.resource_restrictions)
        for ts in dask_scheduler.unrunnable
        if ts.resource_restrictions and is_gpu_request(ts.resource_restrictions)
    )
    workers = tuple(_worker_view(ws) for ws in dask_scheduler.workers.values())
    return Snapshot(unrunnable, tuple(sorted(workers, key=lambda w: w.address)))


async def retire(addresses: list[str], close: bool, remove: bool, dask_scheduler: Any) -> list[str]:
    result = await dask_scheduler.retire_workers(
        workers=addresses, close_workers=close, remove=remove, stimulus_id="migctl-fleet-drain"
    )
    return sorted(result)


def _executing(dask_worker: Any) -> int:
    return int(dask_worker.state.executing_count)


async def executing_count(address: str, dask_scheduler: Any) -> int | None:
    """Tasks executing on the worker now, as the worker says; None if it cannot answer."""
    from distributed.protocol.pickle import dumps
    from distributed.protocol.serialize import Serialized, deserialize

    if address not in dask_scheduler.workers:
        return 0
    replies = await dask_scheduler.broadcast(
        msg={"op": "run", "function": dumps(_executing), "wait": True},
        workers=[address],
        on_error="return",
    )
    reply = replies.get(address)
    if not isinstance(reply, dict) or reply.get("status") != "OK":
        return None
    result = reply["result"]
    if isinstance(result, Serialized):
        result = deserialize(result.header, result.frames)
    return int(result)


def reopen(address: str, dask_scheduler: Any) -> bool:
    """Put a worker left in ``closing_gracefully`` back to running (drain aborted)."""
    from distributed.core import Status

    ws = dask_scheduler.workers.get(address)
    if ws is None or ws.status != Status.closing_gracefully:
        return False
    stimulus = "migctl-fleet-reopen"
    dask_scheduler.handle_worker_status_change(Status.running, ws, stimulus)
    dask_scheduler.stream_comms[address].send(
        {"op": "worker-status-change", "status": "running", "stimulus_id": stimulus}
    )
    return True


def publish(message: dict[str, Any], dask_scheduler: Any) -> None:
    dask_scheduler.log_event(TOPIC, message)


class SchedulerLink(Protocol):
    async def call(self, function: Any, *args: Any) -> Any: ...

    @property
    def broken(self) -> bool: ...


@dataclass
class InProcessLink:
    """The controller inside the scheduler: call directly."""

    scheduler: Any

    async def call(self, function: Any, *args: Any) -> Any:
        result = function(*args, dask_scheduler=self.scheduler)
        return await result if inspect.isawaitable(result) else result

    @property
    def broken(self) -> bool:
        return False


@dataclass
class ClientLink:
    """The controller as its own process: the same calls through ``run_on_scheduler``."""

    client: Any  # an asynchronous distributed.Client

    async def call(self, function: Any, *args: Any) -> Any:
        return await self.client.run_on_scheduler(function, *args)

    @property
    def broken(self) -> bool:
        """The client gave up on the scheduler (it is closed): start over with a new one."""
        return str(self.client.status) in ("closing", "closed")
