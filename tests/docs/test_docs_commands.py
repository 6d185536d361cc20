"""Every command shown in README.md and docs/*.md runs, on a simulated machine, as documented.

A document's shell blocks (```sh, ```console) are run top to bottom in one bash, as a reader
following the page would, on a fresh simulated DGX H100 (``MIGCTL_SIM=dgx-h100``, what the
README's quickstart sets; a page may export another machine) with private files
(``shell.DocShell``). Each ``migctl`` call, also inside ``$(...)`` and ``eval``, must exit with
the code the document implies: 0 unless its comment says ``exit N``. A block's ``migctl
serve`` lines run a real daemon on a private socket until the block ends (or the next
``serve`` line replaces it); while it runs the shell has no ``MIGCTL_SIM``, so the CLI finds
the daemon as on a real server.

Programs other than migctl are shell built-ins (``BUILTINS``) or listed in ``CANNOT_RUN``
(a stub that records its arguments, or not run at all, each with the reason); a document
showing any other program fails this test, as does a command outside a shell block. Placeholders of the docs
follow the small rules in ``SUBSTITUTIONS``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from migctl.cli.main import verb_of
from tests.docs.blocks import Command, commands, documents
from tests.docs.shell import DocShell, Ran
from tests.server.daemon import free_port

MACHINE = "dgx-h100"

SKIP, STUB = "not run", "stub"
# Every program a document may show that cannot run here: how it is handled, and why. A line
# with a program marked SKIP is not run (it must hold no migctl command); a STUB program
# records its arguments and exits 0 (docker's arguments are checked: a MIG device, an image).
CANNOT_RUN: dict[str, tuple[str, str]] = {
    "make": (SKIP, "builds and tests this project; this test runs inside `make test`"),
    "pip": (SKIP, "installs packages; the test runs in the checkout's own installation"),
    ".": (SKIP, "activates a virtual environment (`. .venv/bin/activate`), made by `make venv`"),
    "groupadd": (SKIP, "changes the host's groups (root)"),
    "usermod": (SKIP, "changes the host's users (root)"),
    "install": (SKIP, "copies the unit file into /etc/systemd (root)"),
    "systemctl": (SKIP, "manages the host's services (root, systemd)"),
    "curl": (
        SKIP,
        "talks to the root daemon's socket /run/migctl/migctl.sock; tests/server tests the API",
    ),
    "ssh": (SKIP, "needs a remote GPU server"),
    "docker": (STUB, "needs Docker with the NVIDIA Container Toolkit and a GPU"),
    "podman": (STUB, "needs podman with CDI and a GPU"),
    "kubectl": (STUB, "needs a Kubernetes cluster"),
    "nvidia-smi": (STUB, "needs an NVIDIA driver"),
    "python": (STUB, "the user's program (train.py, serve.py, notebook_server.py)"),
    "./job": (STUB, "the user's program"),
    "./serve.sh": (STUB, "the user's program"),
    "./benchmark.sh": (STUB, "the user's program"),
}
NOT_RUN = {name for name, (how, _) in CANNOT_RUN.items() if how == SKIP}
STUBS = sorted(name for name, (how, _) in CANNOT_RUN.items() if how == STUB)
# Shell built-ins the documents use; `sudo` is dropped (the test runs as its own user, and the
# simulator needs no root).
BUILTINS = {"export", "eval", "echo", "unset", "cd"}


def _mig_uuid(shell: DocShell, prefix: str) -> str:
    devices = shell.mig_devices()
    named = [d for d in devices if str(d["uuid"]).startswith(f"MIG-{prefix}")] if prefix else []
    free = [d for d in devices if d.get("lease") is None] or devices
    chosen = (named or free)[:1]
    return str(chosen[0]["uuid"]) if chosen else "MIG-none"


def _mig_placeholders(shell: DocShell, text: str) -> str:
    return re.sub(
        r"MIG-(?:<uuid>|([0-9a-f]*)-?\.\.\.)",
        lambda m: _mig_uuid(shell, m.group(1) or ""),
        text,
    )


def _system_paths(shell: DocShell, text: str) -> str:
    return re.sub(
        r"(?<![\w./-])/(?:etc|srv|run|var)/[\w./-]+",
        lambda m: str(shell.system_path(m.group(0))),
        text,
    )


def _live_view(shell: DocShell, text: str) -> str:
    return re.sub(r"\bmigctl top\b(?![^#]*--once)", "migctl top --once", text)


# Placeholders and what stands for them, applied to each command before it runs.
SUBSTITUTIONS: dict[str, Callable[[DocShell, str], str]] = {
    # MIG-..., MIG-b4c1993b-..., MIG-<uuid>: the MIG device whose uuid starts so, else the
    # first MIG device without a lease (by GPU, then placement)
    "MIG device uuids": _mig_placeholders,
    # /etc/cdi/..., /srv/migctl/...: the same path under the test's private root
    "system paths": _system_paths,
    # `migctl top` is live until Ctrl-C: one frame
    "migctl top": _live_view,
}


SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
SUBSTITUTED = "SUBSTITUTED"


def _simple_commands(text: str) -> list[list[str]]:
    """The simple commands of a line (split at ; && || |), each as words, comment dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.commenters = "#"
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for word in lexer:
        if word and set(word) <= set(";&|"):
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


def _program(words: list[str]) -> tuple[str, list[str]]:
    """The program a simple command runs (past VAR=value and sudo), and its arguments."""
    index = 0
    while index < len(words) and re.fullmatch(r"[A-Za-z_]\w*=.*", words[index]):
        index += 1
    if index < len(words) and words[index] == "sudo":
        index += 1
    if index == len(words) or words[index] == SUBSTITUTED:
        return "=", []  # only assignments, or the output of a $(...) (its programs count)
    return words[index], words[index + 1 :]


def programs(text: str) -> list[tuple[str, list[str]]]:
    """Every program of a line: its commands', those in ``$(...)`` and in an ``eval`` string."""
    found = []
    for words in _simple_commands(SUBSTITUTION.sub(SUBSTITUTED, text)):
        program, args = _program(words)
        found.append((program, args))
        if program == "eval" and args:
            found.extend(programs(args[0]))
    for inner in SUBSTITUTION.findall(text):
        found.extend(programs(inner))
    return found


def unknown_programs(command: Command) -> list[str]:
    known = {"migctl", "=", *BUILTINS, *CANNOT_RUN}
    return [p for p, _ in programs(command.text) if p not in known]


def _serve_args(command: Command) -> list[str] | None:
    """The arguments of a ``migctl serve`` line, with a free TCP port; None for other lines."""
    found = programs(command.text)
    if len(found) != 1 or found[0][0] != "migctl" or verb_of(found[0][1]) != "serve":
        return None
    args = found[0][1]
    return [re.sub(r"^(127\.0\.0\.1|localhost):\d+$", rf"\1:{free_port()}", a) for a in args]


def _check_docker(command: Command, ran: Ran) -> None:
    """docker got flags naming one MIG device (or, with a soft device's ``--ipc=host``, a GPU),
    then an image: a shell split it as docker will."""
    value_flags = {"--gpus", "-e", "--device", "--name", "-v", "--user"}
    for call in (c for c in ran.stubs if c[0] == "docker" and c[1:2] == ["run"]):
        words, index, devices = call[2:], 0, []
        while index < len(words) and words[index].startswith("-"):
            flag = words[index]
            if flag in value_flags:
                devices.append(words[index + 1])
                index += 2
            else:
                index += 1
        assert index < len(words), f"{command.where}: docker got no image: {call}"
        image = words[index]
        assert image not in {"gpus", "env", "cdi"} and "=" not in image, (command.where, call)
        kinds = "MIG|GPU" if "--ipc=host" in words[:index] else "MIG"
        uuid = rf"({kinds})-[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}$"
        named = [d for d in devices if re.search(uuid, d)]
        assert named, f"{command.where}: docker got no MIG device: {call}"


def _check(command: Command, ran: Ran) -> None:
    where = f"{command.where}: {command.text}\n--- stdout\n{ran.out}\n--- stderr\n{ran.err}"
    if any(p == "migctl" for p, _ in programs(command.text)) or "$(migctl" in command.text:
        assert ran.calls, f"no migctl call happened: {where}"
    for code, argv in ran.calls:
        assert code == command.expected, f"migctl {argv} exited {code}: {where}"
    first = programs(command.text)[0][0]
    assert ran.code == (command.expected if first == "migctl" else 0), where
    _check_docker(command, ran)


def _prepare(shell: DocShell, command: Command) -> str:
    text = command.text
    for rule in SUBSTITUTIONS.values():
        text = rule(shell, text)
    return re.sub(r"\bsudo\s+", "", text)


def run_document(doc: Path, root: Path) -> list[str]:
    """Run every command of ``doc``; what ran, line by line (for the failure report)."""
    found, _ = commands(doc)
    shell = DocShell(root, MACHINE, STUBS)
    done: list[str] = []
    block = -1
    try:
        for command in found:
            if command.block != block:
                shell.stop_daemon()  # a daemon lives until its block ends
                block = command.block
            names = [p for p, _ in programs(command.text)]
            if any(p in NOT_RUN for p in names):
                assert "migctl" not in names, f"{command.where}: split this line"
                done.append(f"{command.where}: not run: {command.text}")
                continue
            serve = _serve_args(command)
            if serve is not None:
                shell.serve(serve)
                done.append(f"{command.where}: daemon: {command.text}")
                continue
            ran = shell.run(_prepare(shell, command))
            _check(command, ran)
            done.append(f"{command.where}: ok: {command.text}")
    except BaseException:
        print("\n".join(done), "\n--- daemon log\n", shell.daemon_log()[-4000:])
        raise
    finally:
        shell.close()
    return done


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.name)
def test_every_command_of_the_document_runs(doc: Path, tmp_path: Path) -> None:
    done = run_document(doc, tmp_path)
    assert len(done) == len(commands(doc)[0])


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.name)
def test_every_program_of_the_document_is_known(doc: Path) -> None:
    """A program that is neither migctl, a built-in, a stub nor listed as not run fails."""
    found, hidden = commands(doc)
    assert not hidden, "commands outside a ```sh or ```console block: " + "; ".join(hidden)
    unknown = [f"{c.where}: {p}" for c in found for p in unknown_programs(c)]
    assert not unknown, "add them to CANNOT_RUN with a reason: " + "; ".join(unknown)


def test_an_unlisted_program_or_a_hidden_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\nmigctl list\nfrobnicate --all   # exits 3\n```\n\n    $ migctl status\n"
    )
    found, hidden = commands(page, root=tmp_path)
    assert [c.expected for c in found] == [0, 3]
    assert [p for c in found for p in unknown_programs(c)] == ["frobnicate"]
    assert hidden == ["page.md:6: $ migctl status"]
