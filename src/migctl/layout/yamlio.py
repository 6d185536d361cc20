"""Read YAML strictly and boundedly: refuse duplicate keys, report syntax errors with their
line, remember the line of every key, and refuse documents that would make reading them
unbounded work.

Why this exists: PyYAML silently keeps the last of two equal keys, which in a layout file
would quietly drop a GPU entry or a profile count; and errors without a line number are
hard to act on. Layout text also arrives from any local user through the daemon, so
nothing here may take work out of proportion to the text: nesting deeper than
:data:`MAX_DEPTH` is refused while composing (before Python's stack could overflow), and
a document whose aliases expand to more than :data:`MAX_NODES` nodes (an "alias bomb"),
an alias inside its own anchor, or a number too long to be a count is refused by one pass
over the composed nodes, each counted once, before anything walks the expansion.
Anchors and aliases of a sane size stay legal: mig-parted reads them, and hand-written
configs share blocks with them. Then duplicates are found and lines recorded on the nodes
(where the key path is known), and the document is constructed by PyYAML's safe
constructor (no Python tags). Used only inside ``migctl.layout``.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migctl.layout.problems import LineIndex, PathPart, fail, key_path

MAX_DEPTH = 32  # nested mappings/sequences, aliases expanded; a layout file needs about 9
MAX_NODES = 100_000  # nodes once aliases are expanded; NVIDIA's default config has ~2,000
MAX_NUMBER_DIGITS = 100  # longer integers are refused before Python converts them

_HINT_SYNTAX = "fix the YAML syntax at that line (indentation, a missing ':' or quote)"
_HINT_SIZE = (
    "write the layout out plainly: layout files need neither deep nesting nor aliases that "
    "multiply their size"
)
_INT_TAG = "tag:yaml.org,2002:int"
Lines = dict[tuple[PathPart, ...], int]


class _TooDeep(Exception):
    def __init__(self, mark: Mark) -> None:
        super().__init__("too deep")
        self.line = mark.line + 1


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose nodes nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.depth >= MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_scalar(node: Node, source: str) -> None:
    if isinstance(node, ScalarNode) and node.tag == _INT_TAG:
        digits = len(node.value)
        if digits > MAX_NUMBER_DIGITS:
            fail(
                source,
                "",
                f"a number with {digits} digits",
                "write a count a GPU can hold (a MIG GPU holds at most a few instances)",
                line=_line(node),
            )


def _measured(node: Node, sizes: dict[int, tuple[int, int]], source: str) -> tuple[int, int]:
    """(nodes, depth) of ``node`` expanded, from its children's; refuses past the bounds."""
    kids = [sizes[id(kid)] for kid in _children(node)]
    size = 1 + sum(kid[0] for kid in kids)
    depth = 1 + max((kid[1] for kid in kids), default=0)
    if size > MAX_NODES:
        how = " through its aliases (*name)" if size > len(sizes) + 1 else ""
        fail(
            source,
            "",
            f"the document expands to more than {MAX_NODES:,} nodes{how} at this line",
            _HINT_SIZE,
            line=_line(node),
        )
    if depth > MAX_DEPTH:
        fail(
            source,
            "",
            f"aliases (*name) nest the document deeper than {MAX_DEPTH} levels at this line",
            _HINT_SIZE,
            line=_line(node),
        )
    return size, depth


def _check_expansion(root: Node, source: str) -> None:
    """Size and depth of the document with aliases expanded, each node visited once."""
    sizes: dict[int, tuple[int, int]] = {}
    in_progress: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            in_progress.discard(key)
            sizes[key] = _measured(node, sizes, source)
            continue
        if key in sizes:
            continue
        if key in in_progress:
            fail(
                source,
                "",
                "an alias (*name) refers to itself: the anchor it names contains it",
                "an alias may only repeat a node that is complete where it is used",
                line=_line(node),
            )
        _check_scalar(node, source)
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node))


def _key_of(node: Node) -> PathPart:
    return node.value if isinstance(node, ScalarNode) else f"<{type(node).__name__}>"


def _walk(node: Node, path: tuple[PathPart, ...], lines: Lines, source: str) -> None:
    """Record the line of every key path below ``node``; refuse duplicate keys."""
    lines.setdefault(path, _line(node))
    if isinstance(node, MappingNode):
        seen: dict[tuple[str, PathPart], int] = {}
        for key_node, value_node in node.value:
            key, line = _key_of(key_node), _line(key_node)
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
    loader = _BoundedLoader(text)
    try:
        nodes: list[Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
        return nodes
    except _TooDeep as exc:
        fail(
            source,
            "",
            f"the document nests deeper than {MAX_DEPTH} levels",
            _HINT_SIZE,
            line=exc.line,
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        fail(source, "", f"YAML syntax error: {problem}", _HINT_SYNTAX, line=line)
    except yaml.YAMLError as exc:
        fail(source, "", f"YAML error: {exc}", _HINT_SYNTAX)
    finally:
        loader.dispose()


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
    if not nodes:
        _empty(source)
    _check_expansion(nodes[0], source)
    lines: Lines = {}
    _walk(nodes[0], (), lines, source)  # before construction, which flattens merge keys
    data = _construct(nodes[0], source)
    if data is None:
        _empty(source)
    return data, LineIndex(lines)


def _empty(source: str) -> None:
    fail(
        source,
        "",
        "the file is empty",
        "start with 'apiVersion: migctl/v1' and 'kind: Layouts' (see docs/layouts.md)",
    )
