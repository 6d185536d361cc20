"""migctl errors as HTTP responses: one JSON shape, one status per error kind.

Why this module exists: API clients (the CLI in front of the daemon, scripts) must get the same
``MigctlError.to_dict()`` shape the CLI prints with ``--output json`` — ``error`` (kind),
``message``, ``hint``, ``exit_code``, ``context`` — whatever failed: a migctl error, a request
that fails validation (bad JSON 400, wrong types 422), an unknown route (404), a body that is too
large (413) or a bug (500, never a traceback). The exit code lets a client turn the response back
into the same exit status the local CLI would give.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from migctl.errors import (
    EXIT_INTERNAL,
    AuthenticationError,
    DriverError,
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    InvalidStateError,
    MigctlError,
    NoDriverError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    RateLimitedError,
    ReadOnlyError,
    UsageError,
)

log = logging.getLogger(__name__)


REQUEST_STATUS = "_migctl_http_status"  # an error's status set by :func:`in_request`


def in_request(error: MigctlError) -> MigctlError:
    """``error`` raised while checking a request body (a layout that can never exist, a GPU or
    profile this machine lacks), marked to answer 422 rather than 409 or 404: the route exists,
    the body asks for what cannot be. The error itself (class, kind, every detail) is unchanged,
    so a client raises the same class as the node did."""
    if isinstance(error, InsufficientResourcesError | NotFoundError):
        setattr(error, REQUEST_STATUS, 422)
    return error


class CarriedError(StarletteHTTPException):
    """A migctl error raised where FastAPI lets only HTTP exceptions through (reading a body):
    answered exactly as the error itself would be."""

    def __init__(self, error: MigctlError) -> None:
        super().__init__(status_for(error), detail=error.message)
        self.error = error


class BodyTooLargeError(InvalidInputError):
    """A request body over the daemon's cap: 413, exit code 11, however the body was sent."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"request body larger than {max_bytes} bytes",
            hint="API bodies are small JSON documents; send less",
            context={"max_bytes": max_bytes},
        )


# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[MigctlError], int], ...] = (
    (AuthenticationError, 401),
    (BodyTooLargeError, 413),
    (RateLimitedError, 429),
    (UsageError, 400),
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (ReadOnlyError, 403),
    (InsufficientResourcesError, 409),
    (InUseError, 409),
    (InvalidStateError, 409),
    (NotSupportedError, 422),
    (InvalidInputError, 422),
    (NoDriverError, 503),
    (DriverError, 500),
)


def status_for(error: MigctlError) -> int:
    marked = getattr(error, REQUEST_STATUS, None)
    if isinstance(marked, int):
        return marked
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def error_body(
    kind: str, message: str, *, hint: str | None, exit_code: int, context: dict[str, Any]
) -> dict[str, Any]:
    return {
        "error": kind,
        "message": message,
        "hint": hint,
        "exit_code": exit_code,
        "context": context,
    }


def error_response(error: MigctlError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
    return JSONResponse(error.to_dict(), status_code=status_for(error), headers=headers)


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, bool]:
    """One readable line for the first few problems; True when the body was not JSON at all."""
    bad_json = any(e.get("type") == "json_invalid" for e in errors)
    parts = []
    for item in errors[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more, bad_json


def _simple_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors[:20]
    ]


async def _on_migctl_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MigctlError)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    detail, bad_json = _validation_message(errors)
    message = (
        f"the request body is not valid JSON: {detail}"
        if bad_json
        else f"invalid request: {detail}"
    )
    body = error_body(
        "invalid_input",
        message,
        hint="see the API schema at /v1/openapi.json",
        exit_code=InvalidInputError.exit_code,
        context={"errors": _simple_errors(errors)},
    )
    return JSONResponse(body, status_code=400 if bad_json else 422)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, CarriedError):
        return error_response(exc.error)
    error_class = {404: NotFoundError, 413: InvalidInputError}.get(exc.status_code, UsageError)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    body = error_body(
        error_class.kind,
        message,
        hint="see /v1/openapi.json",
        exit_code=error_class.exit_code,
        context={},
    )
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error serving %s %s", request.method, request.url.path)
    body = error_body(
        "internal",
        f"internal error: {type(exc).__name__}: {exc} (please report this bug)",
        hint="the daemon's log has the details",
        exit_code=EXIT_INTERNAL,
        context={},
    )
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the migctl error shape."""
    app.add_exception_handler(MigctlError, _on_migctl_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
