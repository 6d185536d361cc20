"""What of a request goes into its audit row: a digest and a short summary, never the body.

Why this module exists: the audit log is written for every mutating request, refused ones
included, and ``POST /v1/plan`` is open to every user with bodies of up to 256 KiB (a layout
file's text). Storing bodies let any user fill the daemon's disk (40 refused requests: 10 MB).
A row keeps, of a request body, its SHA-256 (so a body kept elsewhere can be matched), its size
and a summary of at most :data:`SUMMARY_CHARS` characters (the whole canonical JSON when it is
that short, else the top-level fields with long values shortened); and no row's ``detail`` is
ever more than :data:`MAX_DETAIL_BYTES` (a bigger one becomes its digest and a summary).
Strings from the request line (path, action, target, actor) are bounded too.

Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

SUMMARY_CHARS = 240
VALUE_CHARS = 48
MAX_DETAIL_BYTES = 2048
MAX_FIELD_CHARS = 256


def canonical(value: object) -> str:
    """The JSON text a digest is taken of: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _brief(value: object) -> str:
    if isinstance(value, dict):
        return f"{{{len(value)} entries}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, str) and len(value) > VALUE_CHARS:
        return f"<{len(value)} characters>"
    return canonical(value)


def summary(value: object) -> str:
    """At most :data:`SUMMARY_CHARS` characters saying what ``value`` was."""
    text = canonical(value)
    if len(text) <= SUMMARY_CHARS or not isinstance(value, dict):
        return shorten(text, SUMMARY_CHARS)
    fields = ", ".join(f"{key}: {_brief(value[key])}" for key in sorted(value))
    return shorten(fields, SUMMARY_CHARS)


def digest(value: object) -> dict[str, Any]:
    """``{"sha256", "bytes", "summary"}`` of a JSON value (its canonical text)."""
    data = canonical(value).encode()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "summary": summary(value),
    }


def request_digest(raw: bytes, body: BaseModel) -> dict[str, Any]:
    """What an audit row keeps of a request body (see the module docstring): the digest and
    size of the bytes as sent (``sha256sum`` of the client's file matches), the summary of the
    body as understood."""
    return {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "summary": summary(body.model_dump(mode="json", exclude_none=True)),
    }


def bounded_detail(detail: dict[str, Any]) -> str:
    """``detail`` as the JSON text of a row: itself, or its digest when it is too big."""
    text = json.dumps(detail, sort_keys=True, default=str)
    if len(text.encode()) <= MAX_DETAIL_BYTES:
        return text
    return json.dumps({"truncated": True, **digest(detail)}, sort_keys=True)


def bounded(text: str | None) -> str | None:
    """A path, action, target or actor, at most :data:`MAX_FIELD_CHARS` characters."""
    return None if text is None else shorten(text, MAX_FIELD_CHARS)
