"""The strict pydantic base of both file schemas, and ValidationError -> InvalidInputError.

Why this exists: pydantic checks shapes and types well but words its errors for
programmers ("Extra inputs are not permitted", a location tuple). Users need the key path,
the line, what is wrong and how to fix it. Every schema model derives from
:class:`StrictModel` (extra keys forbidden, frozen, strict types: ``"3"`` is not a count,
``yes`` in quotes is not a bool). Used only inside ``migctl.layout``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from migctl.errors import InvalidInputError
from migctl.layout.problems import LineIndex, PathPart, invalid, key_path, where

KEY_HINTS: dict[str, str] = {
    "apiVersion": "write 'apiVersion: migctl/v1'",
    "kind": "write 'kind: Layouts'",
    "layouts": "add 'layouts:' with at least one named layout",
    "gpus": "add 'gpus:', a list of entries with 'select' and 'mig'",
    "select": "write 'select: all' or e.g. 'select: {index: [0, 1]}', '{model: h100}', "
    "'{pci: \"0x2330\"}'",
    "mig": "write 'mig: true' (MIG on, with 'instances') or 'mig: false' (MIG off)",
    "instances": "list GPU instances, e.g. '- {profile: 1g.10gb, count: 7}'",
    "profile": "write a GI profile name such as 3g.40gb (see `migctl catalog show MODEL`)",
    "count": "write a whole number of instances, 1 or more",
    "placement": "write the start memory slice (e.g. 'placement: 4') or a list of starts",
    "compute": "list compute instance profile names, e.g. '[1c.3g.40gb, 2c.3g.40gb]'",
    "description": "write the description as a quoted string",
    "optional": "write 'optional: true' or 'optional: false'",
    "shares": "write e.g. 'shares: 4', 'shares: [50, 25, 25]' or "
    "'shares: {percent: [50, 50], memory: [20GiB, 20GiB]}'",
    "split": "write a whole number of equal shares, 1 to 100",
    "percent": "list whole percents, e.g. [50, 25, 25]",
    "memory": "write one size for every share, or one per share, e.g. [20GiB, 10GiB]",
    "oversubscribe": "write 'oversubscribe: true' to let the SM shares sum past 100%",
    "index": "write a GPU index (0, 1, ...) or a list of them",
    "model": "write a catalog model name or alias such as h100 (see `migctl catalog`)",
    "pci": 'write a PCI device id in quotes, e.g. "0x2330" or "0x233010DE"',
    "version": "write 'version: v1'",
    "mig-configs": "add 'mig-configs:' with at least one named config",
    "devices": "write 'devices: all' or a list of GPU indexes, e.g. 'devices: [0, 1]'",
    "mig-enabled": "write 'mig-enabled: true' or 'mig-enabled: false'",
    "mig-devices": "map profile names to counts, e.g. 'mig-devices: {\"1g.10gb\": 7}'",
    "device-filter": 'write a PCI id such as "0x233010DE" or a list of them',
}

_TYPE_WORDS: dict[str, str] = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "int_parsing": "a whole number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}


class StrictModel(BaseModel):
    """Extra keys forbidden (with a did-you-mean), frozen, strict scalar types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = [field.alias or name for name, field in cls.model_fields.items()]
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key {key}",
                        {"key": str(key), "allowed": allowed},
                    )
        return data


def custom(message: str, hint: str) -> PydanticCustomError:
    """A validation error with our own message and hint (used in field validators)."""
    return PydanticCustomError(
        "layout", message.replace("{", "(").replace("}", ")"), {"hint": hint}
    )


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _hint_for(parts: Sequence[PathPart]) -> str:
    for part in reversed(parts):
        if isinstance(part, str) and part in KEY_HINTS:
            return KEY_HINTS[part]
    return "see docs/layouts.md for the file format"


def _unknown_key(parts: list[PathPart], ctx: Mapping[str, Any]) -> tuple[list[PathPart], str, str]:
    key, allowed = str(ctx["key"]), [str(a) for a in ctx["allowed"]]
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = (
        (f"did you mean '{close[0]}'? " if close else "")
        + "allowed keys here: "
        + ", ".join(allowed)
    )
    return [*parts, key], f"unknown key '{key}'", hint


def _explain(error: ErrorDetails) -> tuple[list[PathPart], str, str]:
    """(path parts, message, hint) for one pydantic error."""
    parts: list[PathPart] = [p for p in error["loc"] if p != "[key]"]
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "unknown_key":
        return _unknown_key(parts, ctx)
    if kind == "layout":
        return parts, error["msg"], str(ctx.get("hint", _hint_for(parts)))
    if kind == "missing":
        return parts, f"missing required key '{parts[-1]}'", _hint_for(parts)
    if error["loc"] and error["loc"][-1] == "[key]":
        return parts, f"a key must be a string, got {_describe(error['input'])}", "quote the key"
    if kind in _TYPE_WORDS:
        got = _describe(error["input"])
        return parts, f"expected {_TYPE_WORDS[kind]}, got {got}", _hint_for(parts)
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        op = ">=" if kind == "greater_than_equal" else ">"
        return parts, f"must be {op} {bound}, got {error['input']!r}", _hint_for(parts)
    if kind == "too_short":
        last = parts[-1] if parts else ""
        hint = KEY_HINTS.get(last, "") if isinstance(last, str) else ""
        return parts, "must not be empty", hint or f"add at least one entry under {key_path(parts)}"
    return parts, error["msg"], _hint_for(parts)


def translate(exc: ValidationError, source: str, lines: LineIndex) -> InvalidInputError:
    """The first problem (by line) as the error; the others are listed after it."""
    explained = [_explain(error) for error in exc.errors()]
    explained.sort(key=lambda item: lines.line_of(item[0]) or 0)
    parts, message, hint = explained[0]
    more = [f"{where(source, lines.line_of(p))}: {key_path(p)}: {m}" for p, m, _ in explained[1:6]]
    return invalid(source, key_path(parts), message, hint, line=lines.line_of(parts), more=more)


SchemaModel = TypeVar("SchemaModel", bound=BaseModel)


def validate(model: type[SchemaModel], data: Any, source: str, lines: LineIndex) -> SchemaModel:
    """``model.model_validate(data)`` with errors turned into InvalidInputError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise translate(exc, source, lines) from exc
