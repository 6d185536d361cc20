"""Turn an NVML return code into a migctl error that says what, where and how to fix.

Why this exists: ``NVMLError: Insufficient Resources`` tells a user nothing. At the seam
(``backends/nvml.py``) every NVML failure becomes one of migctl's errors carrying the GPU,
profile and placement involved and a hint; the callers add what they know (occupied
slices, PIDs) through ``detail`` and ``hint``.
"""

from __future__ import annotations

from migctl.errors import (
    DriverError,
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    InvalidStateError,
    MigctlError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
)

# nvml.h return codes (see reference/nvml-mig-constants.json)
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
RESET_REQUIRED = 16
IN_USE = 19
INSUFFICIENT_RESOURCES = 23
INVALID_STATE = 29

_CLASS_BY_CODE: dict[int, type[MigctlError]] = {
    INVALID_ARGUMENT: InvalidInputError,
    NOT_SUPPORTED: NotSupportedError,
    NO_PERMISSION: PermissionDeniedError,
    NOT_FOUND: NotFoundError,
    RESET_REQUIRED: InvalidStateError,
    IN_USE: InUseError,
    INSUFFICIENT_RESOURCES: InsufficientResourcesError,
    INVALID_STATE: InvalidStateError,
}

_DEFAULT_HINTS = {
    NO_PERMISSION: "MIG changes need root (or read access to "
    "/proc/driver/nvidia/capabilities/mig/config); run with sudo or through `migctl serve`",
    RESET_REQUIRED: "this GPU cannot be reset here (e.g. a pass-through VM): reboot to apply",
    NOT_SUPPORTED: "check that the GPU supports MIG and that MIG mode is enabled "
    "(`migctl mode enable -i GPU`)",
}


def convert(
    code: int,
    driver_text: str,
    action: str,
    *,
    detail: str | None = None,
    hint: str | None = None,
    context: dict[str, object] | None = None,
) -> MigctlError:
    """``action`` says what was tried, e.g. ``"GPU 2 (...): cannot create 4g.40gb at 0:4"``."""
    cls = _CLASS_BY_CODE.get(code, DriverError)
    message = f"{action}: {detail or driver_text.lower()}"
    return cls(
        message,
        hint=hint or _DEFAULT_HINTS.get(code),
        context={**(context or {}), "nvml_error": driver_text, "nvml_code": code},
    )
