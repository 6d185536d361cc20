"""Every error migctl raises, with the exit code the CLI turns it into.

Why this module exists: users must get a message that says what went wrong, where
(GPU, profile, placement) and how to fix it, and scripts must get a stable exit code.
All foreign errors (NVML return codes, file parsing, OS errors) are converted into one of
these classes at the seam where they occur, with ``raise ... from exc``.

Anyone may import this module; it imports nothing from migctl.

The tree (exit code in brackets)::

    MigctlError [12]
    ├── UsageError [2]                 bad arguments or options
    ├── NotFoundError [3]              GPU, profile, instance, model, file not found
    │   └── CommandNotFoundError [127] ``migctl run``: the command does not exist
    ├── PermissionDeniedError [4]      needs root or the MIG capability
    │   └── CommandNotExecutableError [126] ``migctl run``: the command cannot be executed
    ├── InsufficientResourcesError [5] the slices or instance counts do not allow it
    ├── InUseError [6]                 processes, instances or leases hold it
    ├── NotSupportedError [7]          the GPU or driver cannot do it (e.g. no MIG)
    ├── ReadOnlyError [8]              a mutation was asked for in read-only mode
    ├── NoDriverError [9]              no NVIDIA driver and no simulator chosen
    ├── InvalidStateError [10]         e.g. MIG mode is off, or a change is pending
    ├── InvalidInputError [11]         a file or value failed validation
    ├── DriverError [12]               any other driver failure
    ├── HookFailedError [12]           a hook command failed (``apply --hooks``)
    └── InternalError [70]             a bug inside migctl (the daemon's, seen by a client)
    PermissionDeniedError
    └── AuthenticationError [4]        the daemon cannot tell who is asking (HTTP 401)
    InsufficientResourcesError
    └── RateLimitedError [5]           the daemon asks a caller to slow down (HTTP 429)

Subclasses that carry structure (the planner's ``InfeasibleError``, ``BusyInstanceError``) keep
their parent's kind: an error that crosses the daemon comes back as the class of its kind
(:func:`error_class`) with the same message, hint, context and exit code.

126 and 127 follow the shell's convention for a command that cannot run.
Exit code 1 is reserved for "the check ran and the answer is no" (``migctl assert``);
exit code 70 for an internal bug (the CLI prints a short report, never a traceback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_INTERNAL = 70


class MigctlError(Exception):
    """Root of every migctl error: a message, an optional fix hint, and context."""

    exit_code: ClassVar[int] = 12
    kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        context: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context: dict[str, object] = dict(context or {})

    def to_dict(self) -> dict[str, object]:
        """A stable, JSON-friendly form for ``--output json`` and the REST API."""
        return {
            "error": self.kind,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "context": {k: _jsonable(v) for k, v in sorted(self.context.items())},
        }

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


def _jsonable(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


class UsageError(MigctlError):
    exit_code = 2
    kind = "usage"


class NotFoundError(MigctlError):
    exit_code = 3
    kind = "not_found"


class PermissionDeniedError(MigctlError):
    exit_code = 4
    kind = "permission_denied"


class CommandNotFoundError(NotFoundError):
    exit_code = 127
    kind = "command_not_found"


class CommandNotExecutableError(PermissionDeniedError):
    exit_code = 126
    kind = "command_not_executable"


class InsufficientResourcesError(MigctlError):
    exit_code = 5
    kind = "insufficient_resources"


class InUseError(MigctlError):
    exit_code = 6
    kind = "in_use"


class NotSupportedError(MigctlError):
    exit_code = 7
    kind = "not_supported"


class ReadOnlyError(MigctlError):
    exit_code = 8
    kind = "read_only"


class NoDriverError(MigctlError):
    exit_code = 9
    kind = "no_driver"


class InvalidStateError(MigctlError):
    exit_code = 10
    kind = "invalid_state"


class InvalidInputError(MigctlError):
    exit_code = 11
    kind = "invalid_input"


class DriverError(MigctlError):
    exit_code = 12
    kind = "driver"


class HookFailedError(MigctlError):
    exit_code = 12
    kind = "hook_failed"


class InternalError(MigctlError):
    """A bug inside migctl (an answer of the daemon's ``internal`` kind): exit 70."""

    exit_code = EXIT_INTERNAL
    kind = "internal"


class RateLimitedError(InsufficientResourcesError):
    """Too many requests or connections from one caller: HTTP 429 (exit code 5)."""

    kind = "rate_limited"


class AuthenticationError(PermissionDeniedError):
    """No identity, or a bad one: HTTP 401 (exit code 4 like any permission problem)."""

    kind = "unauthenticated"


ALL_ERROR_CLASSES: tuple[type[MigctlError], ...] = (
    UsageError,
    NotFoundError,
    PermissionDeniedError,
    InsufficientResourcesError,
    InUseError,
    NotSupportedError,
    ReadOnlyError,
    NoDriverError,
    InvalidStateError,
    InvalidInputError,
    DriverError,
    CommandNotFoundError,
    CommandNotExecutableError,
    HookFailedError,
    InternalError,
    AuthenticationError,
    RateLimitedError,
)
_BY_KIND: dict[str, type[MigctlError]] = {cls.kind: cls for cls in ALL_ERROR_CLASSES}


def error_class(kind: str) -> type[MigctlError]:
    """The class of an error ``kind`` (``in_use`` -> InUseError); unknown: MigctlError."""
    return _BY_KIND.get(kind, MigctlError)
