"""The ``migctl`` entry point: global options, verb registration, exit codes.

Why this exists: one place owns the contract with the shell. Every ``MigctlError``
becomes its documented exit code and a message (JSON on stderr with ``--output json``);
anything unexpected becomes exit 70 with a one-line report, never a traceback
(``MIGCTL_DEBUG=1`` shows it for developers). ``--local`` / ``MIGCTL_URL`` choose between the
GPUs and the migctl daemon (rule: ``cli/route.py``; verbs: ``cli/session.py``). The global
options are read here before the verb and, by every verb and sub-verb, after it too
(``cli/global_options.py``).

Exit codes: 0 ok; 1 check failed (``migctl assert``); 2 usage; 3 not found;
4 permission denied; 5 insufficient resources; 6 in use; 7 not supported; 8 read-only;
9 no driver; 10 invalid state; 11 invalid input; 12 driver error; 70 internal error;
130 interrupted. ``migctl run`` exits with its command's code (128+N if signal N killed it),
126 when the command cannot be executed, 127 when it is not found.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import click
import typer

from migctl import __version__
from migctl.cli.global_options import VALUE_OPTIONS, add_everywhere, configure_logging, first_word
from migctl.cli.session import OutputFormat, Session, session, set_session
from migctl.errors import EXIT_INTERNAL, MigctlError

EPILOG = (
    "Exit codes: 0 ok, 1 check failed, 2 usage, 3 not found, 4 permission denied, "
    "5 insufficient resources, 6 in use, 7 not supported, 8 read-only, 9 no driver, "
    "10 invalid state, 11 invalid input, 12 driver error, 70 internal error; "
    "migctl run: the command's own code, 126 not executable, 127 not found. "
    "Environment: MIGCTL_SIM, MIGCTL_READ_ONLY, MIGCTL_OUTPUT, MIGCTL_SIM_DIR, MIGCTL_CATALOG, "
    "MIGCTL_LEASE_DB, MIGCTL_CDI_PATH; the daemon: MIGCTL_URL, MIGCTL_TOKEN, MIGCTL_SOCKET, "
    "MIGCTL_LOCAL."
)

# The verbs, in the order --help lists them (look, change, plan, share, serve, reference):
# (module under migctl.cli, how it adds itself, the top-level verbs it adds). "register" and
# "register_metrics" are functions of the module taking the root app; "app" is the module's
# own Typer app added under the one verb. tests/cli/test_verbs.py checks the verbs listed.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("gpus", "register", ("list", "status", "mode")),
    ("top", "register", ("top",)),
    ("instances", "register", ("profiles", "gi", "ci")),
    ("layouts_cmd", "register", ("plan", "apply", "assert", "export", "recover", "split")),
    ("leases_cmd", "register", ("lease",)),
    ("run_cmd", "register", ("run", "env")),
    ("export_cmd", "register", ("docker-args", "cdi", "k8s", "slurm")),
    ("serve_cmd", "register", ("serve",)),
    ("token_cmd", "app", ("token",)),
    ("gpus", "register_metrics", ("metrics",)),
    ("catalog_cmd", "app", ("catalog",)),
    ("sim_cmd", "app", ("sim",)),
    ("fleet_cmd", "app", ("fleet",)),
)
__all__ = ["SECTIONS", "VALUE_OPTIONS", "build_app", "build_command", "run", "verb_of"]


def _version(flag: bool) -> None:
    if flag:
        typer.echo(f"migctl {__version__}")
        raise typer.Exit()


def main(
    sim: Annotated[
        str | None,
        typer.Option(
            "--sim", envvar="MIGCTL_SIM", help="Use a simulated machine: NAME or FILE.yaml."
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", envvar="MIGCTL_READ_ONLY", help="Refuse every change."),
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            envvar="MIGCTL_LOCAL",
            help="Use the GPUs directly even when a migctl daemon runs (root, or --sim).",
        ),
    ] = False,
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", envvar="MIGCTL_OUTPUT", help="table or json."),
    ] = OutputFormat.TABLE,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log more.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """NVIDIA MIG made easy: inspect GPUs, create and destroy instances, plan layouts."""
    set_session(Session(sim=sim, read_only=read_only, output=output, verbose=verbose, local=local))
    configure_logging(verbose)


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb a command line names (the first word that is not a global option or its value)."""
    index = first_word(list(argv))
    return None if index is None else argv[index]


def build_app(verb: str | None = None) -> typer.Typer:
    """The ``migctl`` command: global options and the verbs (see ``register_verbs``)."""
    root = typer.Typer(
        name="migctl",
        help="NVIDIA Multi-Instance GPU (MIG) partitioning made easy and safe.",
        epilog=EPILOG,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
        add_completion=False,
    )
    root.callback()(main)
    register_verbs(root, verb)
    return root


def build_command(verb: str | None = None) -> click.Command:
    """The click command ``run`` calls: ``build_app`` with the global options on every verb."""
    command = typer.main.get_command(build_app(verb))
    add_everywhere(command)
    return command


def register_verbs(root: typer.Typer, verb: str | None = None) -> None:
    """Add the verbs to ``root``: only the section of ``verb`` when it names one, else all.

    Why: typer converts every registered command (and its modules are imported) on every run;
    a command line that names its verb pays only for that verb's section, which keeps
    ``migctl list`` quick. An unknown verb or none (``migctl --help``) registers everything,
    so help, and the "No such command" message with its suggestions, see every verb.
    """
    known = any(verb in verbs for _, _, verbs in SECTIONS)
    for module_name, how, verbs in SECTIONS:
        if known and verb not in verbs:
            continue
        module = importlib.import_module(f"migctl.cli.{module_name}")
        if how == "app":
            root.add_typer(module.app, name=verbs[0])
        else:
            getattr(module, how)(root)


def _report(error: MigctlError) -> int:
    """Print ``error``; its message and hint may quote outside text (job names, hook output),
    so they are escaped and never read as Rich markup."""
    from rich.text import Text

    from migctl.untrusted import escape

    current = session()
    if current.json:
        print(json.dumps(error.to_dict()), file=sys.stderr)
    else:
        message = escape(error.message, keep_newlines=True)
        current.err.print(Text.assemble(("error:", "bold red"), " ", message))
        if error.hint:
            hint = escape(error.hint, keep_newlines=True)
            current.err.print(Text.assemble(("hint:", "yellow"), " ", hint))
    return error.exit_code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (the console script exits with it)."""
    code = 0
    args = sys.argv[1:] if argv is None else argv
    try:
        # standalone: usage errors print and exit 2
        build_command(verb_of(args))(args=args, prog_name="migctl")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except MigctlError as error:
        code = _report(error)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if os.environ.get("MIGCTL_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (please report this bug; "
            "MIGCTL_DEBUG=1 shows details)",
            file=sys.stderr,
        )
        code = EXIT_INTERNAL
    finally:
        session().close()
    return code
