"""NVML return codes and their strings, as ``nvml.h`` defines them.

Why this exists: the simulated library returns these codes; keeping them here (copied
from the NVML header, see ``reference/nvml-mig-constants.json``) keeps pynvml out of the
simulator.
"""

from __future__ import annotations

SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
INSUFFICIENT_SIZE = 7
RESET_REQUIRED = 16
IN_USE = 19
INSUFFICIENT_RESOURCES = 23
ARGUMENT_VERSION_MISMATCH = 25
INVALID_STATE = 29
UNKNOWN = 999

ERROR_STRINGS = {
    SUCCESS: "Success",
    UNINITIALIZED: "Uninitialized",
    INVALID_ARGUMENT: "Invalid Argument",
    NOT_SUPPORTED: "Not Supported",
    NO_PERMISSION: "Insufficient Permissions",
    NOT_FOUND: "Not Found",
    INSUFFICIENT_SIZE: "Insufficient Size",
    RESET_REQUIRED: "GPU requires restart",
    IN_USE: "In use by another client",
    INSUFFICIENT_RESOURCES: "Insufficient Resources",
    ARGUMENT_VERSION_MISMATCH: "Argument version mismatch",
    INVALID_STATE: "Invalid state",
    UNKNOWN: "Unknown Error",
}

NAMES = {
    "SUCCESS": SUCCESS,
    "UNINITIALIZED": UNINITIALIZED,
    "INVALID_ARGUMENT": INVALID_ARGUMENT,
    "NOT_SUPPORTED": NOT_SUPPORTED,
    "NO_PERMISSION": NO_PERMISSION,
    "NOT_FOUND": NOT_FOUND,
    "INSUFFICIENT_SIZE": INSUFFICIENT_SIZE,
    "RESET_REQUIRED": RESET_REQUIRED,
    "IN_USE": IN_USE,
    "INSUFFICIENT_RESOURCES": INSUFFICIENT_RESOURCES,
    "INVALID_STATE": INVALID_STATE,
    "UNKNOWN": UNKNOWN,
}

# Profile indexes at or past these are INVALID_ARGUMENT, as on driver 580 (the real H100
# capture answers index 17 with Invalid Argument and 10-16 with Not Supported).
GI_PROFILE_COUNT = 0x11
CI_PROFILE_COUNT = 0x8
