"""Soft devices: fixed shares of a GPU or a MIG device through CUDA MPS.

Why this exists: MIG exists on a few GPU models only, and a MIG device cannot be split
further; CUDA MPS gives each client a fixed share of SMs and a pinned memory limit on any
Volta-or-later GPU, and inside a MIG device too. It is weaker isolation than MIG: no fault
isolation (a fatal fault in one client ends every client of that MPS server), no memory
bandwidth isolation, and one Unix user per server at a time. This package holds the
pieces the lease store, ``migctl run``, layouts and the daemon wire together:

* :mod:`~migctl.mps.shares`: value types and parsing (``25%``, ``12GiB``, parents);
* :mod:`~migctl.mps.admission`: the rules a new share must pass;
* :mod:`~migctl.mps.plan`: the plan that turns a machine's soft shares into a layout's
  (the ``shares`` key itself is :mod:`migctl.layout.shares`), with the holders it disturbs;
* :mod:`~migctl.mps.environment`, :mod:`~migctl.mps.control` and :mod:`~migctl.mps.host`:
  one MPS control daemon per parent, with private directories, and the client environment.

Layer: below the layout files (which read ``shares`` with it) and above the size reader;
it never imports a backend, the simulator or the lease store, and takes every path and
program as an argument.
"""

from __future__ import annotations

from migctl.mps.admission import ActiveShare, Admission, AdmissionPolicy, admit, check_share_set
from migctl.mps.control import (
    CONTROL_PROGRAM,
    ComputeModeSetter,
    DaemonState,
    DaemonStatus,
    MpsControl,
    known_daemons,
)
from migctl.mps.environment import (
    CLIENT_VARIABLES,
    MpsPaths,
    client_environment,
    daemon_environment,
    mps_paths,
    pinned_limit_value,
)
from migctl.mps.host import MpsHost
from migctl.mps.plan import (
    CurrentShare,
    Disruption,
    ParentState,
    SoftOp,
    SoftOpKind,
    SoftPlan,
    plan_soft,
)
from migctl.mps.shares import (
    Holder,
    ParentDevice,
    ParentKind,
    SoftDevice,
    SoftShare,
    parse_memory_limit,
    parse_share,
    parse_soft_share,
    resolve_parent,
    sms_for_share,
    soft_device,
)

__all__ = [
    "CLIENT_VARIABLES",
    "CONTROL_PROGRAM",
    "ActiveShare",
    "Admission",
    "AdmissionPolicy",
    "ComputeModeSetter",
    "CurrentShare",
    "DaemonState",
    "DaemonStatus",
    "Disruption",
    "Holder",
    "MpsControl",
    "MpsHost",
    "MpsPaths",
    "ParentDevice",
    "ParentKind",
    "ParentState",
    "SoftDevice",
    "SoftOp",
    "SoftOpKind",
    "SoftPlan",
    "SoftShare",
    "admit",
    "check_share_set",
    "client_environment",
    "daemon_environment",
    "known_daemons",
    "mps_paths",
    "parse_memory_limit",
    "parse_share",
    "parse_soft_share",
    "pinned_limit_value",
    "plan_soft",
    "resolve_parent",
    "sms_for_share",
    "soft_device",
]
