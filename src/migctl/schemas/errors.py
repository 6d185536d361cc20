"""Errors on the wire: the one shape every failure takes in CLI JSON and REST bodies.

Why this module exists: an error that crosses the daemon must come back as the same class, with
the same message, hint, context and exit code, as if the call had been made locally.
"""

from __future__ import annotations

from typing import Any

from migctl.errors import MigctlError, error_class
from migctl.schemas.base import Wire


class ErrorOut(Wire):
    """Every error: its kind, message, hint, exit code and context."""

    error: str
    message: str
    hint: str | None
    exit_code: int
    context: dict[str, Any]

    @classmethod
    def of(cls, error: MigctlError) -> ErrorOut:
        return cls.model_validate(error.to_dict())

    def to_error(self) -> MigctlError:
        """The error as its own class (an unknown kind: the root class, same exit code)."""
        return error_class(self.error)(self.message, hint=self.hint, context=self.context)
