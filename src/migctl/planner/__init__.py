"""The planner: pure placement, reconfiguration and packing decisions; no hardware, no I/O.

Modules (each says more in its docstring):

* ``placement``: exact placement search on one GPU (``place``);
* ``feasibility``: ``plan_gpu`` or an ``InfeasibleError`` that says why and what fits;
* ``reconfigure``: ``reconfigure`` current -> desired on one GPU as an ordered ``Plan``
  (value types in ``plan``);
* ``intent_instances``: the instances an intent asks for on a GPU model or over a machine's
  GPUs: ``split``, ``smallest_profile``, ``parse_demand``, ``fit_demand`` (``engine.intents``
  turns them into each GPU's desired layout);
* ``packing``: ``pack`` / ``compare_methods`` over many GPUs (MILP and heuristic).

Works on ``migctl.model``, ``migctl.geometry`` and ``migctl.catalog`` values only; never
imports backends or the simulator. Anyone above the catalog may import it.
"""

from migctl.planner.feasibility import InfeasibleError, Obstacle, plan_gpu
from migctl.planner.intent_instances import (
    DemandFit,
    DemandItem,
    Sizing,
    fit_demand,
    parse_demand,
    smallest_profile,
    split,
)
from migctl.planner.nearest import NearestLayout
from migctl.planner.packing import (
    Demand,
    GpuLayout,
    Objective,
    PackComparison,
    PackedInstance,
    PackResult,
    compare_methods,
    pack,
)
from migctl.planner.placement import place
from migctl.planner.plan import (
    CreateCi,
    CreateGi,
    CurrentCi,
    CurrentGi,
    CurrentGpu,
    DesiredCi,
    DesiredGi,
    DesiredLayout,
    DestroyCi,
    DestroyGi,
    GiRef,
    Op,
    Plan,
    PlannedCi,
    PlannedGi,
    SetMigMode,
)
from migctl.planner.reconfigure import BusyInstanceError, reconfigure
from migctl.planner.sizing import Requirement

__all__ = [
    "BusyInstanceError",
    "CreateCi",
    "CreateGi",
    "CurrentCi",
    "CurrentGi",
    "CurrentGpu",
    "Demand",
    "DemandFit",
    "DemandItem",
    "DesiredCi",
    "DesiredGi",
    "DesiredLayout",
    "DestroyCi",
    "DestroyGi",
    "GiRef",
    "GpuLayout",
    "InfeasibleError",
    "NearestLayout",
    "Objective",
    "Obstacle",
    "Op",
    "PackComparison",
    "PackResult",
    "PackedInstance",
    "Plan",
    "PlannedCi",
    "PlannedGi",
    "Requirement",
    "SetMigMode",
    "Sizing",
    "compare_methods",
    "fit_demand",
    "pack",
    "parse_demand",
    "place",
    "plan_gpu",
    "reconfigure",
    "smallest_profile",
    "split",
]
