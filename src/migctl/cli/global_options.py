"""The global options (``-o/--output``, ``--sim``, ``--read-only``, ``--local``, ``-v``), before
or after the verb.

Why this exists: kubectl users type ``migctl list -o json``, not ``migctl -o json list``; the
options were only read before the verb, so the first form exited 2 ("No such option"). The root
callback (``cli/main.py``) reads them before the verb, with their ``MIGCTL_*`` environment
variables; :func:`add_everywhere` gives every verb and sub-verb the same options too (listed under
"Global options" in its help), and a value given after the verb overrides the one before it
(the last one wins, as in kubectl; ``-v`` counts add up). A verb that has an option string of its
own (say its own ``-o``) keeps it: only the global option strings it does not use are added.
Only ``cli/main.py`` and the verb modules that parse arguments themselves import this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import click

from migctl.cli.session import OutputFormat, session

PREFIX = "migctl_global_"
SECTION = "Global options (also before the verb)"
# global options that take a value: the word after them is never the verb
VALUE_OPTIONS = frozenset({"--sim", "--output", "-o"})


def _fresh() -> list[click.Option]:
    """New global options for one command (click options belong to one command each)."""
    return [
        click.Option(
            ["-o", "--output", f"{PREFIX}output"],
            type=click.Choice([f.value for f in OutputFormat]),
            help="table or json.",
            hidden=True,
        ),
        click.Option(
            ["--sim", f"{PREFIX}sim"],
            metavar="NAME|FILE",
            help="Use a simulated machine.",
            hidden=True,
        ),
        click.Option(
            ["--read-only", f"{PREFIX}read_only"],
            is_flag=True,
            default=False,
            help="Refuse every change.",
            hidden=True,
        ),
        click.Option(
            ["--local", f"{PREFIX}local"],
            is_flag=True,
            default=False,
            help="Use the GPUs directly even when a migctl daemon runs.",
            hidden=True,
        ),
        click.Option(
            ["-v", "--verbose", f"{PREFIX}verbose"], count=True, help="Log more.", hidden=True
        ),
    ]


def configure_logging(verbose: int) -> None:
    """The log level ``-v`` asks for (the root callback and a later ``-v`` both call this)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    # each request to the migctl daemon: only with -vv (-v says which way was taken)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def apply(values: dict[str, Any]) -> None:
    """Apply global options given after a verb to this invocation's session."""
    current = session()
    if values.get("output") is not None:
        current.output = OutputFormat(values["output"])
    if values.get("sim") is not None:
        current.sim = values["sim"]
    if values.get("read_only"):
        current.read_only = True
    if values.get("local"):
        current.local = True
    if values.get("verbose"):
        current.verbose += values["verbose"]
        configure_logging(current.verbose)


def _is_global(param: click.Parameter) -> bool:
    return (param.name or "").startswith(PREFIX)


_MADE: dict[type[click.Command], type[click.Command]] = {}


def _with_globals(base: type[click.Command]) -> type[click.Command]:
    """``base`` that applies the global options it parsed and lists them in its own section."""
    if base in _MADE:
        return _MADE[base]

    class WithGlobals(base):  # type: ignore[valid-type,misc]  # a class made at run time
        def invoke(self, ctx: click.Context) -> Any:
            given = {
                name[len(PREFIX) :]: ctx.params.pop(name)
                for name in list(ctx.params)
                if name.startswith(PREFIX)
            }
            apply(given)
            return super().invoke(ctx)

        def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            super().format_options(ctx, formatter)
            rows = []
            for param in self.get_params(ctx):
                if _is_global(param):
                    param.hidden = False
                    record = param.get_help_record(ctx)
                    param.hidden = True
                    if record is not None:
                        rows.append(record)
            if rows:
                with formatter.section(SECTION):
                    formatter.write_dl(rows)

    WithGlobals.__name__ = WithGlobals.__qualname__ = f"{base.__name__}WithGlobals"
    _MADE[base] = WithGlobals
    return WithGlobals


def _walk(command: click.Command) -> Iterator[click.Command]:
    yield command
    if isinstance(command, click.Group):
        for child in command.commands.values():
            yield from _walk(child)


def add_everywhere(root: click.Command) -> None:
    """Give every command under ``root`` (not ``root``: it has the originals) the globals."""
    for command in _walk(root):
        if command is root or any(_is_global(p) for p in command.params):
            continue
        taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for option in _fresh():
            free = [opt for opt in option.opts if opt not in taken]
            if free:
                option.opts = free
                command.params.append(option)
        command.__class__ = _with_globals(type(command))


def first_word(args: list[str], known: Callable[[str], bool] = lambda _: False) -> int | None:
    """Index of the first word of ``args`` that is no global option or its value (or None).

    ``known`` tells other option strings that take a value, if the caller has any.
    """
    skip = False
    for index, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word == "--":
            return None
        if word.startswith("-"):
            skip = word in VALUE_OPTIONS or known(word)
            continue
        return index
    return None
