"""The NVML backend package: the only place in migctl that imports pynvml.

``backend.NvmlBackend`` implements ``migctl.backends.base.Backend``; ``live`` reads the
GPU's geometry from the driver; ``errors`` turns NVML return codes into migctl errors.
"""

from __future__ import annotations

from migctl.backends.nvml.backend import NvmlBackend

__all__ = ["NvmlBackend"]
