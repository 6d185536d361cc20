"""Fleet test setup: distributed's GPU monitoring off (this process's NVML is the simulator).

pynvml's library is process-wide; migctl points it at the simulator, so distributed's own
NVML diagnostics (scheduler and workers in this process) must not call it.
"""

from __future__ import annotations

import dask

dask.config.set({"distributed.diagnostics.nvml": False})
