"""Layout file errors that name the file, the line, the key path and the fix.

Why this exists: a layout file drives destructive changes, so a mistake must be reported
precisely (``inference.yaml:12: layouts.inference.gpus[0].instances[1].profile: unknown
profile 3g.45gb for NVIDIA H100 80GB HBM3``) with a hint, as
:class:`migctl.errors.InvalidInputError` (exit 11). Key paths are built here in one
spelling for the whole package. Used only inside ``migctl.layout``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

from migctl.errors import InvalidInputError

PathPart = str | int
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def key_path(parts: Sequence[PathPart]) -> str:
    """``("layouts", "a.b", "gpus", 0)`` -> ``layouts["a.b"].gpus[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return text


def join(path: str, *parts: PathPart) -> str:
    """Extend a key path: ``join("layouts.a", "gpus", 0)`` -> ``layouts.a.gpus[0]``."""
    tail = key_path(parts)
    if not path:
        return tail
    return path + (tail if tail.startswith("[") else "." + tail)


class LineIndex:
    """The line (1-based) of each key path in a YAML document, when known."""

    def __init__(self, lines: Mapping[tuple[PathPart, ...], int] | None = None) -> None:
        self._lines = dict(lines or {})

    def line_of(self, parts: Sequence[PathPart]) -> int | None:
        """The line of the deepest known prefix of ``parts``."""
        for end in range(len(parts), -1, -1):
            line = self._lines.get(tuple(parts[:end]))
            if line is not None:
                return line
        return None

    def line_of_path(self, path: str) -> int | None:
        return self.line_of(split_key_path(path))


def split_key_path(path: str) -> list[PathPart]:
    """The inverse of :func:`key_path`."""
    parts: list[PathPart] = []
    pattern = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
    position = 0
    while position < len(path):
        match = pattern.match(path, position)
        if match is None:
            break
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return parts


def where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


def invalid(
    source: str,
    path: str,
    message: str,
    hint: str,
    *,
    line: int | None = None,
    more: Sequence[str] = (),
) -> InvalidInputError:
    """An InvalidInputError naming file, line and key path, with a hint how to fix it."""
    location = where(source, line)
    text = f"{location}: {path}: {message}" if path else f"{location}: {message}"
    if more:
        text += f" (and {len(more)} more problem{'s' if len(more) > 1 else ''}: "
        text += "; ".join(more) + ")"
    context: dict[str, object] = {"file": source, "key_path": path}
    if line is not None:
        context["line"] = line
    return InvalidInputError(text, hint=hint, context=context)


def fail(source: str, path: str, message: str, hint: str, *, line: int | None = None) -> NoReturn:
    raise invalid(source, path, message, hint, line=line)
