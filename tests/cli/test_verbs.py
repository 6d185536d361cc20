"""The verb table of ``migctl.cli.main``: a run registers only the section of its verb.

``SECTIONS`` names, per module, the top-level verbs it adds; a wrong or missing entry would
make a verb vanish when named on its own, so these tests check the table against what each
module really registers, and that the command line's verb is found behind global options.
"""

from __future__ import annotations

import click
import pytest
import typer

from migctl.cli.main import SECTIONS, VALUE_OPTIONS, build_app, register_verbs, run, verb_of


def verbs(root: typer.Typer) -> list[str]:
    group = typer.main.get_command(root)
    assert isinstance(group, click.Group)
    return list(group.commands)


@pytest.mark.parametrize(("module", "how", "listed"), SECTIONS)
def test_each_section_adds_exactly_the_verbs_it_lists(
    module: str, how: str, listed: tuple[str, ...]
) -> None:
    alone = build_app(listed[0])
    assert verbs(alone) == list(listed)


def test_the_full_app_has_every_listed_verb_and_no_other() -> None:
    everything = verbs(build_app())
    listed = [verb for _, _, names in SECTIONS for verb in names]
    assert sorted(everything) == sorted(listed)
    assert len(set(listed)) == len(listed)


def test_value_options_are_the_global_options_that_take_a_value() -> None:
    group = typer.main.get_command(build_app())
    taking = {
        name
        for param in group.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for name in param.opts
    }
    assert taking == VALUE_OPTIONS


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["list"], "list"),
        (["--sim", "list", "status"], "status"),  # "list" is the value of --sim here
        (["-o", "json", "--local", "-vv", "gi", "create", "9"], "gi"),
        (["--sim=dgx-h100", "apply", "--dry-run"], "apply"),
        (["--help"], None),
        ([], None),
        (["--", "list"], None),
    ],
)
def test_the_verb_is_found_behind_global_options(argv: list[str], verb: str | None) -> None:
    assert verb_of(argv) == verb


def test_an_unknown_verb_registers_everything_for_the_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = typer.Typer()
    register_verbs(root, "lsit")
    assert "list" in verbs(root) and "sim" in verbs(root)
    assert run(["lsit"]) == 2
    assert "No such command 'lsit'" in capsys.readouterr().err


def test_a_verb_named_alone_still_runs_and_shows_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["catalog", "--help"]) == 0
    assert "Usage: migctl catalog" in capsys.readouterr().out
    assert run(["--sim", "h100-single", "-o", "json", "mode", "show"]) == 0
    assert '"gpus"' in capsys.readouterr().out
