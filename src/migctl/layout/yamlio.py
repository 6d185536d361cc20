"""Read YAML strictly: refuse duplicate keys, report syntax errors with their line, and
remember the line of every key so later errors can point at it.

Why this exists: PyYAML silently keeps the last of two equal keys, which in a layout file
would quietly drop a GPU entry or a profile count; and errors without a line number are
hard to act on. The text is composed into nodes once; duplicates are found and lines
recorded on the nodes (where the key path is known), then the document is constructed
by PyYAML's safe constructor (no Python tags). Used only inside ``migctl.layout``.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migctl.layout.problems import LineIndex, PathPart, fail, key_path

_HINT_SYNTAX = "fix the YAML syntax at that line (indentation, a missing ':' or quote)"
Lines = dict[tuple[PathPart, ...], int]


def _key_of(node: Node) -> PathPart:
    return node.value if isinstance(node, ScalarNode) else f"<{type(node).__name__}>"


def _walk(node: Node, path: tuple[PathPart, ...], lines: Lines, source: str) -> None:
    """Record the line of every key path below ``node``; refuse duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        seen: dict[tuple[str, PathPart], int] = {}
        for key_node, value_node in node.value:
            key, line = _key_of(key_node), key_node.start_mark.line + 1
            first = seen.get((key_node.tag, key))
            if first is not None:
                fail(
                    source,
                    key_path([*path, key]),
                    f"duplicate key '{key}' (first on line {first})",
                    "remove one of the two entries or merge them; YAML would keep only the last",
                    line=line,
                )
            seen[(key_node.tag, key)] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, source)
    elif isinstance(node, SequenceNode):
        for position, item in enumerate(node.value):
            _walk(item, (*path, position), lines, source)


def _compose(text: str, source: str) -> list[Node]:
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        fail(source, "", f"YAML syntax error: {problem}", _HINT_SYNTAX, line=line)
    except yaml.YAMLError as exc:
        fail(source, "", f"YAML error: {exc}", _HINT_SYNTAX)


def _construct(node: Node, source: str) -> Any:
    try:
        return yaml.SafeLoader("").construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        fail(source, "", f"YAML error: {exc.problem or exc}", _HINT_SYNTAX, line=line)


def load_yaml(text: str, source: str) -> tuple[Any, LineIndex]:
    """The document in ``text`` and the line of each key path; InvalidInputError if bad."""
    nodes = _compose(text, source)
    if len(nodes) > 1:
        fail(
            source,
            "",
            f"the file holds {len(nodes)} YAML documents ('---'); a layout file has one",
            "put every layout under one 'layouts:' (or 'mig-configs:') mapping",
            line=nodes[1].start_mark.line + 1,
        )
    data = _construct(nodes[0], source) if nodes else None
    if data is None:
        fail(
            source,
            "",
            "the file is empty",
            "start with 'apiVersion: migctl/v1' and 'kind: Layouts' (see docs/layouts.md)",
        )
    lines: Lines = {}
    _walk(nodes[0], (), lines, source)
    return data, LineIndex(lines)
