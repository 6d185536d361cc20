"""The shell commands of README.md and docs/*.md, as a reader would type them.

Why this exists: ``test_docs_commands.py`` runs every command the documentation shows. This
module finds them: fenced blocks marked ``sh``, ``bash``, ``shell`` (every line is a command)
or ``console`` (lines after ``$ `` are commands, the others show output), with backslash
continuations joined, and each command's expected exit code, 0 unless its comment says
``exit N`` / ``exits N``. A command anywhere else (an indented code block, a fence of another
language) is reported, so none can hide from the test. Only tests import this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"sh", "bash", "shell"}
CONSOLE = {"console"}
LOOKS_LIKE_A_COMMAND = re.compile(r"^\s*(\$ |(sudo )?migctl\s)")
EXIT = re.compile(r"\bexits? (\d+)\b")


@dataclass(frozen=True)
class Command:
    """One command line of a document, where it is, and the exit code the document implies."""

    doc: str  # path relative to the project root
    line: int  # 1-based line in the document
    block: int  # which shell block of the document (0-based)
    text: str  # the command, continuations joined, comment kept
    expected: int

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def comment_of(text: str) -> str:
    """The shell comment at the end of ``text`` ('' if none): a ``#`` after a blank, unquoted."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"':
                continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[index + 1 :].strip()
    return ""


def _expected(text: str) -> int:
    found = EXIT.search(comment_of(text))
    return int(found.group(1)) if found else 0


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Backslash continuations joined; each with the line it starts on."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in lines:
        start, text = (number, raw) if pending is None else (pending[0], f"{pending[1]} {raw}")
        if text.rstrip().endswith("\\"):
            pending = (start, text.rstrip()[:-1].rstrip())
            continue
        pending = None
        joined.append((start, text))
    return joined


def _commands(lang: str, body: str, first_line: int) -> list[tuple[int, str]]:
    numbered = list(enumerate(body.splitlines(), start=first_line))
    if lang in CONSOLE:
        numbered = [(n, t[2:]) for n, t in numbered if t.startswith("$ ")]
    return [
        (number, text.strip())
        for number, text in _logical_lines(numbered)
        if text.strip() and not text.strip().startswith("#")
    ]


def commands(path: Path, root: Path = ROOT) -> tuple[list[Command], list[str]]:
    """The commands of a document, and the places where a command sits outside a shell block."""
    tokens = MarkdownIt().parse(path.read_text())
    doc = path.relative_to(root).as_posix()
    found: list[Command] = []
    hidden: list[str] = []
    block = 0
    for token in tokens:
        if token.type not in ("fence", "code_block") or token.map is None:
            continue
        lang = token.info.split()[0].lower() if token.info.strip() else ""
        first = token.map[0] + (2 if token.type == "fence" else 1)
        if token.type == "fence" and lang in SHELL | CONSOLE:
            for number, text in _commands(lang, token.content, first):
                found.append(Command(doc, number, block, text, _expected(text)))
            block += 1
            continue
        for number, text in enumerate(token.content.splitlines(), start=first):
            if LOOKS_LIKE_A_COMMAND.match(text):
                hidden.append(f"{doc}:{number}: {text.strip()}")
    return found, hidden
