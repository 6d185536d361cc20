"""Every `migctl ...` command that a message or hint of the package names really exists.

Why this exists: a hint told users to run `migctl catalog capture -o FILE`, but the flag is
`-f` (`-o` is the global --output). This test reads every string of the package (not
docstrings), finds the commands quoted in backticks, and walks each through the CLI's own
command tree: every verb and subcommand must exist, and every option must be one that
command (or, before the verb, the top level) accepts. `[...]` marks optional parts, `a|b`
alternatives, `...` or `--` the end of what is checked, `{...}` a value.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer.main

from migctl.cli.main import build_app

SOURCE = Path(__file__).resolve().parents[2] / "src" / "migctl"
QUOTED = re.compile(r"`(migctl(?: [^`]*)?)`")
ROOT = typer.main.get_command(build_app())


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f-strings: a formatted value reads as X
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def quoted_commands() -> Iterator[tuple[str, str]]:
    """(where, command) for every `migctl ...` in a non-docstring string of the package."""
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        skip = _docstrings(tree) | parts  # an f-string is read whole, not part by part
        for node in ast.walk(tree):
            text = _text(node) if id(node) not in skip else None
            for match in QUOTED.finditer(text or ""):
                where = f"{path.relative_to(SOURCE.parent)}:{getattr(node, 'lineno', '?')}"
                yield where, match.group(1)


def _option(command: click.Command, word: str) -> click.Option | None:
    name = word.split("=", 1)[0]
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def problems(command: click.Command, words: list[str], path: str) -> list[str]:
    """What in ``words`` the command ``path`` (a click command) does not accept."""
    position = 0
    while position < len(words):
        word = words[position]
        if word in ("...", "--") or word.startswith("..."):
            return []
        if word.startswith("-"):
            option = _option(command, word)
            if option is None:
                return [f"`{path}` has no option {word}"]
            takes_value = not (option.is_flag or option.count) and "=" not in word
            position += 2 if takes_value else 1
            continue
        if isinstance(command, click.Group):
            return _subcommands(command, words[position:], path)
        position += 1  # an argument
    return []


def _subcommands(group: click.Group, words: list[str], path: str) -> list[str]:
    found: list[str] = []
    for name in words[0].split("|"):
        sub = group.commands.get(name)
        if sub is None and "show" in group.commands and path == "migctl catalog":
            sub, rest = group.commands["show"], [name, *words[1:]]  # `catalog MODEL`
        else:
            rest = words[1:]
        if sub is None:
            found.append(f"`{path}` has no command {name!r}")
        else:
            found.extend(problems(sub, rest, f"{path} {name}"))
    return found


def words_of(command: str) -> list[str]:
    cleaned = command.replace("\\|", "|").replace("[", " ").replace("]", " ")
    return cleaned.split()[1:]


COMMANDS = sorted(set(quoted_commands()))


def test_the_package_names_many_commands() -> None:
    assert len(COMMANDS) > 60
    assert any("catalog capture -f" in command for _, command in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_quoted_command_exists_with_its_options(where: str, command: str) -> None:
    assert problems(ROOT, words_of(command), "migctl") == [], f"{where}: {command}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("migctl catalog capture -o FILE", "`migctl catalog capture` has no option -o"),
        ("migctl gi creat 1g.10gb", "`migctl gi` has no command 'creat'"),
        ("migctl status --placements", "`migctl status` has no option --placements"),
        ("migctl lease acquire|renw", "`migctl lease` has no command 'renw'"),
    ],
)
def test_the_checker_finds_wrong_commands(command: str, expected: str) -> None:
    assert problems(ROOT, words_of(command), "migctl") == [expected]
