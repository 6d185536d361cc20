"""What ``migctl sim`` and ``migctl token`` print with ``--output json``.

Why this module exists: the simulator's control panel and the daemon's API tokens are driven
by scripts too (CI sets up machines, an admin rotates tokens); their documents are versioned
like every other (``migctl/v2``). Built by ``cli/sim_cmd.py`` and ``cli/token_cmd.py`` from the
simulator's state and the daemon's token records. Only the CLI imports this module.
"""

from __future__ import annotations

from pydantic import Field

from migctl.schemas.base import Wire


class ModelTrustOut(Wire):
    key: str
    trust: str


class SimNamedOut(Wire):
    name: str
    description: str
    models: list[ModelTrustOut]


class SimMachinesOut(Wire):
    """``migctl sim machines``: the named simulated machines."""

    machines: list[SimNamedOut]
    note: str


class SimGpuOut(Wire):
    index: int
    model: str
    trust: str
    mig_current: bool
    mig_pending: bool
    gpu_instances: int


class DerivationOut(Wire):
    """A value the catalog lacks, derived by the simulator from the model's geometry."""

    profile: str
    field: str
    value: str
    reason: str


class SimFaultOut(Wire):
    """An armed NVML failure (see ``migctl.sim.state.SimFault``)."""

    function: str
    error: int
    count: int
    skip: int
    gpu: int | None


class SimMachineOut(Wire):
    """``migctl sim show``: the simulated machine and its state file."""

    name: str
    state_file: str | None
    driver_version: str
    permissions: str
    reset_supported: bool
    boot_id: int
    gpus: list[SimGpuOut]
    notes: list[str]
    derived: dict[str, list[DerivationOut]] = Field(description="per model key")
    faults: list[SimFaultOut]


class SimProcessOut(Wire):
    """``migctl sim attach|hold``: a process the simulated driver now sees."""

    pid: int
    gpu_index: int
    gi: int | None = None
    ci: int | None = None
    device: str | None = None


class SimDetachOut(Wire):
    pid: int
    removed: bool = Field(description="false: it was not attached")


class SimRebootOut(Wire):
    rebooted: bool


class SimResetOut(Wire):
    gpu_index: int


class SimFaultsClearedOut(Wire):
    removed: int


class SimPermissionsOut(Wire):
    permissions: str


class SimForgottenOut(Wire):
    """``migctl sim forget``: the state file and the machine's own files, removed."""

    removed: list[str]


class TokenOut(Wire):
    """An API token of the daemon (never its secret)."""

    token_id: str
    name: str
    role: str
    owner: str
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None
    revoked_by: str | None
    active: bool


class TokenCreatedOut(Wire):
    """``migctl token create``: the secret, shown once, and the token."""

    token: str
    info: TokenOut


class TokenListOut(Wire):
    tokens: list[TokenOut]


class TokenRevokedOut(Wire):
    info: TokenOut
