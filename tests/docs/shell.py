"""A reader's shell for the documentation's commands: one bash, a fresh simulated machine.

Why this exists: ``test_docs_commands.py`` must run the documented commands as a reader types
them, in order, with shell state (``export``, ``eval "$(migctl env ...)"``, ``$$``) carried
from one command to the next. :class:`DocShell` keeps one ``bash`` per document, fed one command
at a time, in a private directory: its own simulator state, lease database, daemon state and
socket, HOME and runtime directory (the simulator's directory short, under ``/tmp``, so that
an MPS pipe directory under it fits a socket path), and ``examples/`` linked in. The simulated
MPS daemons a document's soft devices start end with the session. ``migctl`` on its PATH is a
wrapper that records each call's exit code (so a ``migctl`` inside ``$(...)`` or ``eval`` is
checked too); the other programs a document may show are stubs that record their arguments.
``migctl serve`` is started by :meth:`DocShell.serve` as a real daemon on the private socket.
Only tests import this module.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docs.blocks import ROOT
from tests.server.daemon import wait_healthy

MIGCTL = shutil.which("migctl", path=str(Path(sys.executable).parent)) or "migctl"
WRAPPER = """#!/bin/sh
"$MIGCTL_REAL" "$@"
rc=$?
printf '%s\\037%s\\n' "$rc" "$*" >> "$MIGCTL_CALLS"
exit $rc
"""
STUB = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\037%s' "$a"; done; echo; } \
    >> "$STUB_LOG"
exit 0
"""
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Ran:
    """What one command did."""

    code: int
    out: str
    err: str
    calls: list[tuple[int, str]]  # each migctl call: exit code, arguments
    stubs: list[list[str]]  # each stub call: program name, arguments


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class DocShell:
    """One document's shell session on a fresh simulated machine (``machine``)."""

    def __init__(self, root: Path, machine: str, stubs: list[str]) -> None:
        self.root = root
        self.work = root / "work"
        self.work.mkdir(parents=True)
        (self.work / "examples").symlink_to(ROOT / "examples")
        bin_dir = root / "bin"
        bin_dir.mkdir()
        _executable(bin_dir / "migctl", WRAPPER)
        for name in stubs:  # "./job" lives in the working directory, "python" on PATH
            target = self.work / name[2:] if name.startswith("./") else bin_dir / name
            _executable(target, STUB)
        self.calls_log, self.stub_log = root / "calls.log", root / "stubs.log"
        self.env = self._environment(machine, bin_dir)
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.work,
            env=self.env,
            text=True,
            start_new_session=True,
        )
        self.count = 0
        self.daemon: subprocess.Popen[bytes] | None = None
        self.hidden_sim: str | None = None

    def _environment(self, machine: str, bin_dir: Path) -> dict[str, str]:
        state = self.root / "state"
        # short: an MPS pipe directory under a simulated machine's files must fit a socket path
        self.sim_dir = Path(tempfile.mkdtemp(prefix="docsim", dir="/tmp"))
        keep = ("LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "LOGNAME")
        env = {k: v for k, v in os.environ.items() if k in keep}
        for sub in ("home", "run", "state"):
            (self.root / sub).mkdir()
        (self.root / "run").chmod(0o700)
        env.update(
            PATH=f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
            HOME=str(self.root / "home"),
            XDG_RUNTIME_DIR=str(self.root / "run"),
            XDG_STATE_HOME=str(self.root / "home" / ".local" / "state"),
            COLUMNS="200",
            MIGCTL_SIM=machine,
            MIGCTL_SIM_DIR=str(self.sim_dir),
            MIGCTL_SIM_MPS_LIFETIME_S="600",  # a simulated MPS daemon never outlives a run
            MIGCTL_STATE_DIR=str(state),
            MIGCTL_LEASE_DB=str(state / "leases.db"),
            MIGCTL_SOCKET=str(self.root / "run" / "migctl.sock"),
            MIGCTL_CDI_PATH=str(self.system_path("/etc/cdi/migctl.yaml")),
            MIGCTL_REAL=MIGCTL,
            MIGCTL_CALLS=str(self.calls_log),
            STUB_LOG=str(self.stub_log),
        )
        return env

    def system_path(self, path: str) -> Path:
        """Where a system path of the docs (``/etc/cdi/...``) lives here; its folder exists."""
        moved = self.root / "fs" / path.lstrip("/")
        moved.parent.mkdir(parents=True, exist_ok=True)
        return moved

    # one command --------------------------------------------------------------------------

    def run(self, text: str, timeout_s: float = 120.0) -> Ran:
        """Run ``text`` in the session; what it printed and every migctl and stub call."""
        calls_at = self._size(self.calls_log)
        stubs_at = self._size(self.stub_log)
        number = self.count
        self.count += 1
        out, err, done = (self.root / f"{number}.{ext}" for ext in ("out", "err", "rc"))
        assert self.bash.stdin is not None
        self.bash.stdin.write(
            f"{{ {text}\n}} >{out} 2>{err} </dev/null; echo $? >{done}.tmp; mv {done}.tmp {done}\n"
        )
        self.bash.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while not done.exists():
            if time.monotonic() > deadline or self.bash.poll() is not None:
                self.close()
                raise TimeoutError(f"still running after {timeout_s} s (or the shell ended)")
            time.sleep(0.02)
        return Ran(
            int(done.read_text()),
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            [
                (int(code), argv)
                for code, argv in (
                    line.split("\x1f", 1) for line in self._tail(self.calls_log, calls_at)
                )
            ],
            [line.split("\x1f") for line in self._tail(self.stub_log, stubs_at)],
        )

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    @staticmethod
    def _tail(path: Path, offset: int) -> list[str]:
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace").splitlines()

    def current_env(self) -> dict[str, str]:
        """The session's exported variables now."""
        dump = self.root / "env.dump"
        assert self.run(f"env -0 > {dump}").code == 0
        items = (item.partition("=") for item in dump.read_text().split("\0") if "=" in item)
        return {name: value for name, _, value in items}

    def mig_devices(self) -> list[dict[str, object]]:
        """The machine's MIG devices (through the daemon when one runs), by GPU and placement."""
        listing = self.root / "list.json"
        ran = self.run(f'"$MIGCTL_REAL" -o json list > {listing}')
        if ran.code != 0:
            return []
        gpus = json.loads(listing.read_text())["gpus"]
        return [device for gpu in gpus for device in gpu["mig_devices"]]

    # the daemon ---------------------------------------------------------------------------

    def serve(self, args: list[str]) -> None:
        """Start ``migctl ARGS`` (a serve line; it replaces a daemon this session started)."""
        self.stop_daemon()
        env = self.current_env()
        if os.geteuid() != 0:  # `sudo` is dropped: make this user an admin, as root would be
            args = [*args, "--admin-group", grp.getgrgid(os.getgid()).gr_name]
        with (self.root / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen(
                [MIGCTL, *args],
                env=env,
                cwd=self.work,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_healthy(self.daemon, Path(env["MIGCTL_SOCKET"]), self.daemon_log, READY_TIMEOUT_S)
        # clients as on a real server: no --sim, so they find the daemon on its socket
        self.hidden_sim = env.get("MIGCTL_SIM")
        assert self.run("unset MIGCTL_SIM").code == 0

    def daemon_log(self) -> str:
        log = self.root / "daemon.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop_daemon(self) -> None:
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.daemon = None
        if self.hidden_sim is not None:
            assert self.run(f"export MIGCTL_SIM={self.hidden_sim}").code == 0
            self.hidden_sim = None

    def close(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        self.daemon = None
        if self.bash.poll() is None:
            os.killpg(self.bash.pid, signal.SIGKILL)
        self.bash.wait()
        end_mps_daemons(self.sim_dir)
        shutil.rmtree(self.sim_dir, ignore_errors=True)


def end_mps_daemons(sim_dir: Path) -> None:
    """End the simulated MPS control daemons a document's soft devices started."""
    for pid_file in sim_dir.glob("*/mps/*/pipe/nvidia-cuda-mps-control.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            continue
