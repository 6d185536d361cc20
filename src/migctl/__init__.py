"""migctl: NVIDIA Multi-Instance GPU (MIG) partitioning made easy, safe and efficient.

The public API (docs/api.md has runnable examples)::

    import migctl

    with migctl.open_node(sim="dgx-h100") as node:        # or open_node() on a GPU server
        node.set_mode([0], enabled=True)
        node.apply(migctl.SplitTarget(n=7), gpus=[0])
        for gpu in node.inventory().gpus:
            print(gpu.info.index, [d.uuid for d in gpu.devices])

    remote = migctl.connect("unix:///run/migctl/migctl.sock")   # the same Node, via a daemon

Both return a :class:`Node`; results are the value types below; failures are
:class:`MigctlError` subclasses with an ``exit_code``. Names are loaded on first use, so that
``import migctl`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module it lives in (loaded lazily by __getattr__)
_EXPORTS: dict[str, str] = {
    "ApplyOutcome": "migctl.reports",
    "CheckReport": "migctl.reports",
    "ComputeInstance": "migctl.model",
    "DemandTarget": "migctl.schemas.layouts",
    "GpuInfo": "migctl.model",
    "GpuInstance": "migctl.model",
    "GpuModel": "migctl.model",
    "GpuProfiles": "migctl.model",
    "GpuView": "migctl.model",
    "InstancesTarget": "migctl.schemas.layouts",
    "Inventory": "migctl.reports",
    "LayoutTarget": "migctl.schemas.layouts",
    "Lease": "migctl.leases.types",
    "LeaseRequest": "migctl.schemas.leases",
    "LocalNode": "migctl.node.local",
    "MigDevice": "migctl.model",
    "MigctlError": "migctl.errors",
    "ModeChange": "migctl.backends.base",
    "Node": "migctl.node.protocol",
    "Placement": "migctl.model",
    "PlanReport": "migctl.reports",
    "RecoverReport": "migctl.reports",
    "RemoteNode": "migctl.node.remote",
    "Settings": "migctl.settings",
    "SizeTarget": "migctl.schemas.layouts",
    "SplitTarget": "migctl.schemas.layouts",
    "Target": "migctl.schemas.layouts",
    "connect": "migctl.node.open",
    "errors": "migctl.errors",
    "open_node": "migctl.node.open",
}
__all__ = [
    "ApplyOutcome",
    "CheckReport",
    "ComputeInstance",
    "DemandTarget",
    "GpuInfo",
    "GpuInstance",
    "GpuModel",
    "GpuProfiles",
    "GpuView",
    "InstancesTarget",
    "Inventory",
    "LayoutTarget",
    "Lease",
    "LeaseRequest",
    "LocalNode",
    "MigDevice",
    "MigctlError",
    "ModeChange",
    "Node",
    "Placement",
    "PlanReport",
    "RecoverReport",
    "RemoteNode",
    "Settings",
    "SizeTarget",
    "SplitTarget",
    "Target",
    "__version__",
    "connect",
    "errors",
    "open_node",
]

if TYPE_CHECKING:
    from migctl import errors
    from migctl.backends.base import ModeChange
    from migctl.errors import MigctlError
    from migctl.leases.types import Lease
    from migctl.model import (
        ComputeInstance,
        GpuInfo,
        GpuInstance,
        GpuModel,
        GpuProfiles,
        GpuView,
        MigDevice,
        Placement,
    )
    from migctl.node.local import LocalNode
    from migctl.node.open import connect, open_node
    from migctl.node.protocol import Node
    from migctl.node.remote import RemoteNode
    from migctl.reports import (
        ApplyOutcome,
        CheckReport,
        Inventory,
        PlanReport,
        RecoverReport,
    )
    from migctl.schemas.layouts import (
        DemandTarget,
        InstancesTarget,
        LayoutTarget,
        SizeTarget,
        SplitTarget,
        Target,
    )
    from migctl.schemas.leases import LeaseRequest
    from migctl.settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'migctl' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "errors" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
