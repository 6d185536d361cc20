"""Choose and open the backend: the simulator when asked for, else the real driver.

Why this exists: one rule for every entry point (CLI, service, library users):
``--sim NAME|PATH`` or ``MIGCTL_SIM`` selects a simulated machine; otherwise migctl
loads the real NVML and, if there is none, says so and how to use the simulator — it
never silently pretends. ``--read-only`` / ``MIGCTL_READ_ONLY=1`` refuses every mutation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from migctl.catalog import Catalog, load_catalog

if TYPE_CHECKING:
    from migctl.backends.nvml import NvmlBackend
    from migctl.sim import SimControl

SIM_ENV = "MIGCTL_SIM"
READ_ONLY_ENV = "MIGCTL_READ_ONLY"
TRUE_WORDS = {"1", "true", "yes", "on"}


def env_read_only() -> bool:
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in TRUE_WORDS


def sim_spec(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get(SIM_ENV) or None


def open_backend(
    sim: str | None = None,
    *,
    read_only: bool = False,
    catalog: Catalog | None = None,
    sim_dir: Path | None = None,
) -> NvmlBackend:
    """The NVML backend over the chosen simulated machine, or over the real driver."""
    from migctl.backends.nvml import NvmlBackend

    catalog = catalog or load_catalog()
    read_only = read_only or env_read_only()
    spec = sim_spec(sim)
    if spec is None:
        return NvmlBackend(catalog, read_only=read_only)
    from migctl.sim import SimLibrary, open_sim

    machine = open_sim(spec, catalog, sim_dir)
    state = machine.store.read()
    label = f"simulated {state.name} ({len(state.gpus)} GPUs, driver {state.driver_version})"
    label = "; ".join([label, *machine.trust_notes(state)])  # models with derived values
    return NvmlBackend(
        catalog,
        library=SimLibrary(machine),
        read_only=read_only,
        label=label,
        files_dir=machine.files_dir,
    )


def open_sim_control(sim: str | None = None, catalog: Catalog | None = None) -> SimControl:
    """The simulator's control panel for the chosen machine (``migctl sim ...``)."""
    from migctl.errors import UsageError
    from migctl.sim import SimControl, open_sim

    spec = sim_spec(sim)
    if spec is None:
        raise UsageError(
            "no simulated machine chosen",
            hint="pass --sim NAME (e.g. --sim dgx-h100) or export MIGCTL_SIM=NAME",
        )
    return SimControl(open_sim(spec, catalog or load_catalog()))
