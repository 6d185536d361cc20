"""The global options work after the verb too, for every verb and sub-verb.

``migctl list --output json`` used to exit 2 ("No such option: --output") although the README
says every command takes ``--output json``; kubectl users put such options after the verb.
Every verb of the command tree is run here both ways (options before the verb, and after it),
each time on a fresh simulated machine, and must behave the same; ``VERBS`` must name every
verb the CLI has, so a new verb is covered as soon as it exists.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer

from migctl.cli.global_options import add_everywhere
from migctl.cli.main import build_command, run

MACHINE = "h100-single"
SPEC = "1g.10gb"  # after the set-up: 7 x 1g.10gb on GPU 0, lease 1 held on one of them

# verb -> the rest of a command line that succeeds (or fails the same way both times) after
# the set-up; "{device}" is a MIG device uuid and "{pid}" a live process of the test.
VERBS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("list",): (),
    ("status",): ("-i", "0"),
    ("top",): ("--once",),
    ("profiles",): ("-i", "0", "--placements"),
    ("plan",): ("--model", "h100", "--split", "3"),
    ("apply",): ("--split", "3", "-i", "0", "--force"),
    ("assert",): ("-f", "examples/inference-h100.yaml", "-c", "inference"),
    ("export",): ("--format", "mig-parted"),
    ("recover",): (),
    ("split",): ("3", "-i", "0", "--dry-run"),
    ("run",): ("--profile", SPEC, "--", "true"),
    ("env",): ("--profile", SPEC, "--pid", "{pid}"),
    ("docker-args",): ("--device", "{device}"),
    ("serve",): ("--tcp", "127.0.0.1:no-port"),  # refused before it listens
    ("metrics",): (),
    ("mode", "show"): (),
    ("mode", "enable"): ("-i", "0"),
    ("mode", "disable"): ("-i", "0"),  # refused: instances exist
    ("gi", "create"): ("1g.10gb", "-i", "0"),  # refused: the GPU is full
    ("gi", "list"): (),
    ("gi", "destroy"): ("--all", "-i", "0"),  # refused: a lease holds one
    ("ci", "create"): ("--gi", "9", "-i", "0"),
    ("ci", "list"): (),
    ("ci", "destroy"): ("--gi", "9", "--all", "-i", "0"),
    ("lease", "acquire"): ("--profile", SPEC),
    ("lease", "release"): ("1",),
    ("lease", "renew"): ("1", "--ttl", "1h"),
    ("lease", "list"): ("--all",),
    ("cdi", "generate"): (),
    ("k8s", "export"): ("--node", "n1"),
    ("slurm", "gres"): ("--node", "n1"),
    ("token", "create"): ("--name", "ci", "--via", "direct"),
    ("token", "list"): ("--via", "direct"),
    ("token", "revoke"): ("nobody", "--via", "direct"),  # refused: no such token
    ("catalog",): (),
    ("catalog", "show"): ("h100",),
    ("catalog", "capture"): ("-i", "0"),
    ("catalog", "check"): ("-i", "0"),
    ("sim", "machines"): (),
    ("sim", "show"): (),
    ("sim", "attach"): ("--pid", "{pid}", "-d", "{device}"),
    ("sim", "hold"): ("-d", "{device}", "--seconds", "1"),
    ("sim", "detach"): ("--pid", "{pid}"),
    ("sim", "reboot"): (),
    ("sim", "reset-gpu"): ("-i", "0"),
    ("sim", "permissions"): ("root-only",),
    ("sim", "reset-state"): (),
    ("sim", "fault", "add"): ("nvmlDeviceGetCount", "UNKNOWN"),
    ("sim", "fault", "clear"): (),
    # the fleet's verbs, each refused the same way: no scheduler there, a bad value, --sim with
    # a daemon (an agent or a controller that started would run until stopped)
    ("fleet", "agent"): ("--scheduler", "tcp://127.0.0.1:9", "--node", "unix:///nowhere.sock"),
    ("fleet", "controller"): ("--scheduler", "tcp://127.0.0.1:9", "--cycle", "-1"),
    ("fleet", "status"): ("--scheduler", "tcp://127.0.0.1:9", "--timeout", "0.2"),
    ("fleet", "metrics"): ("--scheduler", "tcp://127.0.0.1:9", "--timeout", "0.2"),
    ("fleet", "demo"): ("--hosts", "0"),
}


def _paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(command, click.Group):
        if command.invoke_without_command:
            yield path
        for name, child in command.commands.items():
            yield from _paths(child, (*path, name))
    else:
        yield path


def test_the_table_names_every_verb() -> None:
    assert sorted(_paths(build_command())) == sorted(VERBS)


def _globals_after(tail: tuple[str, ...], options: list[str]) -> list[str]:
    """``options`` at the end of the verb's options (before ``--`` when there is one)."""
    if "--" in tail:
        cut = tail.index("--")
        return [*tail[:cut], *options, *tail[cut:]]
    return [*tail, *options]


class Machine:
    """A fresh simulated machine with its own files, set up as VERBS expects."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, *, lease: bool = True) -> None:
        for name, sub in (
            ("MIGCTL_SIM_DIR", "sim"),
            ("MIGCTL_STATE_DIR", "state"),
            ("MIGCTL_LEASE_DB", "leases.db"),
            ("MIGCTL_CDI_PATH", "cdi.yaml"),
            ("MIGCTL_SOCKET", "d.sock"),
            ("XDG_RUNTIME_DIR", "run"),
        ):
            monkeypatch.setenv(name, str(root / sub))
        base = ["--sim", MACHINE]
        assert run([*base, "split", "7", "-i", "0"]) == 0
        if lease:
            assert run([*base, "lease", "acquire", "--profile", SPEC, "--job", "set-up"]) == 0


def _invoke(
    capsys: pytest.CaptureFixture[str], argv: list[str], fill: dict[str, str]
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run([word.format(**fill) for word in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _device(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run(["--sim", MACHINE, "-o", "json", "list"]) == 0
    listing = json.loads(capsys.readouterr().out)
    devices = [d for d in listing["gpus"][0]["mig_devices"] if d["lease"] is None]
    return str(devices[0]["uuid"])


def _shape(text: str) -> object:
    """JSON output without the values that differ between two runs (times, PIDs, uuids)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return _keys(data)


def _keys(data: object) -> object:
    if isinstance(data, dict):
        return {key: _keys(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_keys(item) for item in data]
    return type(data).__name__


@pytest.mark.parametrize("verb", sorted(VERBS), ids=" ".join)
def test_every_verb_takes_the_global_options_before_or_after_it(
    verb: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # examples/ for `assert`
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        results = []
        for where in ("before", "after"):
            Machine(tmp_path / where, monkeypatch)
            fill = {"pid": str(sleeper.pid), "device": _device(capsys)}
            options = ["-o", "json", "--sim", MACHINE]
            tail = VERBS[verb]
            if where == "before":
                argv = [*options, *verb, *tail]
            else:
                argv = [*verb, *_globals_after(tail, options)]
            results.append(_invoke(capsys, argv, fill))
    finally:
        sleeper.kill()
        sleeper.wait()
    (code_before, out_before, err_before), (code_after, out_after, err_after) = results
    assert code_after == code_before, (err_before, err_after)
    assert "No such option" not in err_after
    if code_before != 0:  # refused both times: as JSON, and for the same reason
        assert json.loads(err_after)["error"] == json.loads(err_before)["error"]
        return
    if _shape(out_before) is not None:
        assert _shape(out_after) == _shape(out_before)
        assert json.loads(out_after).get("kind") == json.loads(out_before).get("kind")
    else:  # a file format (YAML, shell lines): the same text, uuids and times aside
        assert _plain(out_after) == _plain(out_before)


def _plain(text: str) -> str:
    text = re.sub(r"(GPU|MIG)-[0-9a-f-]{36}", "UUID", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+\S*", "TIME", text)
    return re.sub(r"\b\d\d:\d\d:\d\d\b", "TIME", text)


@pytest.mark.parametrize(
    "verb",
    [
        ("split", "3", "-i", "0"),
        ("apply", "--split", "3", "-i", "0"),
        ("gi", "destroy", "--all", "-i", "0"),
        ("ci", "destroy", "--gi", "7", "--all", "-i", "0"),
    ],
    ids=" ".join,
)
def test_read_only_after_the_verb_refuses_the_change(
    verb: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    Machine(tmp_path, monkeypatch, lease=False)
    before = _invoke(capsys, ["--sim", MACHINE, "-o", "json", "list"], {})[1]
    code, _, err = _invoke(capsys, [*verb, "--sim", MACHINE, "--read-only"], {})
    assert code == 8, err
    assert "read-only" in err
    assert _invoke(capsys, ["--sim", MACHINE, "-o", "json", "list"], {})[1] == before


def test_options_anywhere_among_the_verbs_options_and_the_last_one_wins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Machine(tmp_path, monkeypatch)
    code, out, _ = _invoke(capsys, ["--sim", "dgx-h100", "list", "--sim", MACHINE, "-i", "0"], {})
    assert code == 0 and "H100" in out  # h100-single: GPU 0 only; a DGX would be fine too
    code, out, _ = _invoke(
        capsys, ["-o", "table", "gi", "list", "-o", "json", "--sim", MACHINE], {}
    )
    assert code == 0 and json.loads(out)["kind"]
    code, out, _ = _invoke(capsys, ["gi", "-o", "json", "--sim", MACHINE, "list", "-i", "0"], {})
    assert code == 0 and json.loads(out)["kind"], "on a group, before its sub-verb, too"
    code, out, _ = _invoke(capsys, ["catalog", "-o", "json", "h100"], {})
    assert code == 0 and json.loads(out)["kind"] == "GpuModel"


def test_verbose_and_local_after_the_verb(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Machine(tmp_path, monkeypatch)
    monkeypatch.setenv("MIGCTL_URL", "http://127.0.0.1:9")  # a daemon that is not there
    code, _, err = _invoke(capsys, ["list", "--local", "-v", "--sim", MACHINE], {})
    assert code == 0, err
    assert "migctl: local" in err, "-v after the verb says which way was taken"


def test_words_after_the_command_of_run_are_left_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Machine(tmp_path, monkeypatch)
    out_file = tmp_path / "argv"
    script = f'printf "%s\\n" "$@" > {out_file}'
    argv = ["run", "--sim", MACHINE, "--profile", SPEC, "--", "sh", "-c", script, "sh"]
    code, _, err = _invoke(capsys, [*argv, "-o", "json", "--read-only", "-v"], {})
    assert code == 0, err
    assert out_file.read_text().split() == ["-o", "json", "--read-only", "-v"]


@pytest.mark.parametrize("verb", sorted(VERBS), ids=" ".join)
def test_help_of_every_verb_lists_the_global_options(
    verb: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*verb, "-o", "json", "--sim", MACHINE, "--read-only", "--local", "-v", "--help"]
    code, out, err = _invoke(capsys, argv, {})
    assert code == 0, err
    assert "Global options (also before the verb):" in out
    assert re.search(r"-o, --output \[table\|json\]", out)
    own = out.split("Global options")[0]
    assert "--read-only" not in own, "listed once, in its own section"


def test_a_verb_with_an_option_of_the_same_name_keeps_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = typer.Typer(rich_markup_mode=None)
    seen: dict[str, object] = {}

    @app.command("write")
    def write(out: str = typer.Option("-", "-o", help="Where to write.")) -> None:
        from migctl.cli.session import session

        seen.update(out=out, output=session().output.value)

    @app.command("other")
    def other() -> None:
        pass

    command = typer.main.get_command(app)
    add_everywhere(command)
    assert isinstance(command, click.Group)
    with pytest.raises(SystemExit) as done:
        command(["write", "-o", "file.txt", "--output", "json"], standalone_mode=True)
    assert done.value.code == 0
    assert seen == {"out": "file.txt", "output": "json"}
    write_help = command.commands["write"].get_help(click.Context(command.commands["write"]))
    assert "  --output [table|json]" in write_help and "-o, --output" not in write_help


def test_top_says_it_has_no_json_form(capsys: pytest.CaptureFixture[str]) -> None:
    """Every verb takes -o json: top, a live view, says so instead of printing a table."""
    code, out, err = _invoke(capsys, ["top", "--once", "-o", "json", "--sim", MACHINE], {})
    assert code == 2 and not out
    assert "status -o json" in json.loads(err)["hint"]
