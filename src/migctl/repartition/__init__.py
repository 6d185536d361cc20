"""Demand-driven repartitioning: serve waiting lease requests by reshaping idle MIG slices.

Why this package exists: on a shared GPU server the daemon owns the GPUs; lease requests that
no free MIG device serves wait in a queue. With the policy on, the daemon reshapes only idle
instances (never one in use, leased, or idle for less than ``min_idle_seconds``) so waiting
requests fit, destroying as few instances as possible, within an hourly reconfiguration budget,
in priority order with aging and a reservation rule so that large requests never starve.

Pure decision library, testable without a server or a GPU:

* ``requests``: ``Request``, ``WaitQueue``, ``service_order`` (priority, aging, age);
* ``policy``: ``Policy`` (pydantic, frozen);
* ``view``: ``GpuView`` / ``MachineView`` (what ``decide`` sees), ``IdleTracker``;
* ``decide``: ``decide(machine, queue, policy, now) -> Decision`` (rules in its docstring);
* ``decision``: the ``Decision`` value (grants, reshapes with plans, waiting reasons);
* ``replay``: a discrete-event replayer of request traces against a modelled machine.

Typical use in the daemon (at every lease request, release, expiry, and on a timer)::

    tracker = IdleTracker()                           # one per daemon
    queue = WaitQueue()                               # requests that found no device
    queue.add(Request(lease_id, arrival_s=time.time(), memory_mib=12288, priority=0))
    views = [GpuView(model, current, tracker.observe(current, now), uuids)
             for model, current, uuids in gpus]       # CurrentGpu with busy = processes/leases
    decision = decide(MachineView(tuple(views), reshape_times), queue, policy, now)
    for grant in decision.grants: ...                 # lease grant.uuid / (gpu, gi_id, ci_id)
    for reshape in decision.reshapes: ...             # apply reshape.plan (engine), remember
        # the start time in reshape_times, tracker.forget([reshape.gpu_index]), then lease the
        # device of the GI at each grant.placement to grant.request_id
    # remove served ids from the queue; decision.waiting says why the others wait

Imports ``migctl.planner``, ``migctl.geometry``, ``migctl.model`` and ``migctl.errors`` only
(never backends, the simulator or the lease store). The daemon and ``bench/`` import it.
"""

from migctl.repartition.decide import decide, device_serves
from migctl.repartition.decision import (
    Decision,
    Grant,
    NewDeviceGrant,
    Reservation,
    Reshape,
    Waiting,
    WaitReason,
    layout_to_dict,
)
from migctl.repartition.policy import RECONFIGURATION_WINDOW_S, Policy
from migctl.repartition.requests import (
    Request,
    WaitQueue,
    creatable_profiles,
    effective_priority,
    service_order,
)
from migctl.repartition.view import NO_CI, GiState, GpuView, IdleTracker, MachineView

__all__ = [
    "NO_CI",
    "RECONFIGURATION_WINDOW_S",
    "Decision",
    "GiState",
    "GpuView",
    "Grant",
    "IdleTracker",
    "MachineView",
    "NewDeviceGrant",
    "Policy",
    "Request",
    "Reservation",
    "Reshape",
    "WaitQueue",
    "WaitReason",
    "Waiting",
    "creatable_profiles",
    "decide",
    "device_serves",
    "effective_priority",
    "layout_to_dict",
    "service_order",
]
