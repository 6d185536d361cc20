"""Which way the CLI goes when nothing names a daemon: every user finds the system daemon, and
a socket file nobody usable answers on is an error, never a silent switch to local access.

The system socket (``/run/migctl/migctl.sock``) is pointed at the test daemon's socket by
replacing ``migctl.client.discovery.SYSTEM_SOCKET``: in this process, or in a forked child that
runs the CLI as the unprivileged user ``daemon`` (uid 1; needs root, skipped otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migctl.cli.main import run
from migctl.client import discovery
from migctl.errors import MigctlError
from migctl.settings import Settings
from tests.cli.conftest import daemon_devices, end_all_leases, migctl
from tests.server.daemon import Daemon

Capsys = pytest.CaptureFixture[str]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the CLI as a user")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may write (a simulator state for a local fallback, $XDG_RUNTIME_DIR)."""
    path = Path(tempfile.mkdtemp(prefix="migctl-route-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_daemon_user(system_socket: Path, home: Path, *argv: str) -> Ran:
    """``migctl ARGV`` run by the user ``daemon`` (a forked child of this process that setuids:
    the interpreter itself may not be readable by other users), with ``system_socket`` as the
    system socket and no MIGCTL_* variables."""
    account = pwd.getpwnam("daemon")
    out, err = home / f"out-{len(argv)}", home / f"err-{len(argv)}"
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 70
        try:
            discovery.SYSTEM_SOCKET = system_socket
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            run(list(argv))  # as root first: loads every module (the stdlib may be root's only)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            for name in [k for k in os.environ if k.startswith("MIGCTL_")]:
                del os.environ[name]
            os.environ.update(
                HOME=str(home), XDG_RUNTIME_DIR=str(home), MIGCTL_SIM_DIR=str(home / "sim")
            )
            sys.stdout, sys.stderr = open(out, "w"), open(err, "w")  # noqa: SIM115
            code = run(list(argv))
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return Ran(os.waitstatus_to_exitcode(status), out.read_text(), err.read_text())


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@needs_root
def test_a_user_reaches_the_system_daemon_by_default(cli_daemon: Daemon, open_dir: Path) -> None:
    listed = as_daemon_user(cli_daemon.socket_path, open_dir, "-v", "-o", "json", "list")
    assert listed.returncode == 0, listed.stderr
    devices = [d["uuid"] for g in json.loads(listed.stdout)["gpus"] for d in g["mig_devices"]]
    assert devices == daemon_devices(cli_daemon)
    assert f"through the daemon at unix:{cli_daemon.socket_path}" in listed.stderr
    try:
        leased = as_daemon_user(
            cli_daemon.socket_path, open_dir, "-o", "json", "lease", "acquire", "-p", "1g.10gb"
        )
        assert leased.returncode == 0, leased.stderr
        lease = json.loads(leased.stdout)["lease"]
        with cli_daemon.client() as root:  # the daemon's own lease database has it
            held = root.get(f"/v1/leases/{lease['lease_id']}").json()
        assert held["user"] == "daemon" and held["active"] and held["uuid"] == lease["uuid"]
    finally:
        end_all_leases(cli_daemon)


@needs_root
def test_a_socket_the_user_may_not_open_is_an_error(cli_daemon: Daemon, open_dir: Path) -> None:
    private = open_dir / "private.sock"
    with listening(private):
        private.chmod(0o600)
        refused = as_daemon_user(private, open_dir, "-o", "json", "list")
    assert refused.returncode == 4, refused.stderr
    error = json.loads(refused.stderr.strip().splitlines()[-1])
    assert (
        error["message"]
        == f"cannot connect to the migctl daemon's socket {private}: permission denied"
    )
    assert "--local" in error["hint"]


class listening:
    """A Unix socket at ``path`` that accepts connections (and answers ``reply``, if any)."""

    def __init__(self, path: Path, reply: bytes | None = None) -> None:
        self.path, self.reply = path, reply
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> listening:
        self.sock.bind(str(self.path))
        self.sock.listen(8)
        if self.reply is not None:
            threading.Thread(target=self._answer, daemon=True).start()
        return self

    def _answer(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                if conn.recv(65536):  # the probe's bare connect sends nothing
                    conn.sendall(self.reply or b"")

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()


def as_user_here(monkeypatch: pytest.MonkeyPatch, system: Path, runtime: Path) -> None:
    """This process looks for daemons as a non-root user would, with ``system`` as the system
    socket and ``runtime`` as $XDG_RUNTIME_DIR."""
    monkeypatch.setattr(discovery, "SYSTEM_SOCKET", system)
    monkeypatch.setattr(discovery, "effective_uid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))


def stale_socket(path: Path) -> Path:
    """A socket file nobody listens on (what a SIGKILLed daemon leaves)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    return path


def last_error(err: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(err.strip().splitlines()[-1])
    return found


def test_a_system_socket_nobody_answers_on_is_an_error_not_a_fallback(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = stale_socket(tmp_path / "migctl.sock")
    as_user_here(monkeypatch, system, tmp_path / "runtime")
    result = migctl(capsys, "-o", "json", "list")
    assert result.code == 10, result.err
    error = last_error(result.err)
    assert f"a migctl daemon socket exists at {system}, but no daemon answers there" in str(
        error["message"]
    )
    assert "--local" in str(error["hint"]) and "systemctl start migctl" in str(error["hint"])
    local = migctl(capsys, "--local", "--sim", "h100-single", "-o", "json", "list")
    assert local.code == 0, local.err  # going local on purpose still works


def test_a_daemon_that_refuses_the_client_is_an_error(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(
        {"error": "rate_limited", "message": "too many connections from you", "hint": "wait",
         "exit_code": 5, "context": {}}
    ).encode()  # fmt: skip
    reply = (
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )
    system = tmp_path / "migctl.sock"
    as_user_here(monkeypatch, system, tmp_path / "runtime")
    with listening(system, reply):
        result = migctl(capsys, "-o", "json", "list")
    assert result.code == 10, result.err
    message = str(last_error(result.err)["message"])
    assert message == (
        f"the migctl daemon on {system} refused this client: HTTP 429: too many connections "
        "from you"
    )


def test_a_users_own_daemon_is_found_after_the_system_one(
    cli_daemon: Daemon, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "migctl.sock").symlink_to(cli_daemon.socket_path)
    as_user_here(monkeypatch, tmp_path / "no-system.sock", runtime)
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert result.code == 0, result.err
    assert [d["uuid"] for g in result.json()["gpus"] for d in g["mig_devices"]] == (
        daemon_devices(cli_daemon)
    )


def test_no_socket_at_all_is_local(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user_here(monkeypatch, tmp_path / "none.sock", tmp_path / "runtime")
    result = migctl(capsys, "-v", "-o", "json", "list")
    assert result.code in {0, 9}, result.err  # the local driver, or none (exit 9)
    looked = f"{tmp_path / 'none.sock'} or {tmp_path / 'runtime' / 'migctl.sock'}"
    assert f"local: no daemon socket at {looked}" in result.err


def candidates(environ: dict[str, str], euid: int) -> list[Path]:
    settings = Settings.from_env({"HOME": "/home/u", **environ}, euid=euid)
    return discovery.candidate_sockets(settings, environ, euid)


def test_the_candidate_sockets() -> None:
    system = Path("/run/migctl/migctl.sock")
    assert candidates({"MIGCTL_SOCKET": "/x/s.sock"}, euid=7) == [Path("/x/s.sock")]
    assert candidates({}, euid=0) == [system]
    assert candidates({"XDG_RUNTIME_DIR": "/run/user/7"}, euid=7) == [
        system,
        Path("/run/user/7/migctl.sock"),
    ]
    assert candidates({}, euid=7) == [system, Path("/home/u/.local/state/migctl/migctl.sock")]


def test_serve_listens_where_clients_look_first() -> None:
    """A daemon started without --socket listens on the first socket its users look at."""
    for environ, euid in (({}, 0), ({"XDG_RUNTIME_DIR": "/run/user/7"}, 7), ({}, 7)):
        settings = Settings.from_env({"HOME": "/home/u", **environ}, euid=euid)
        served = discovery.serve_socket(settings, environ, euid)
        assert served in discovery.candidate_sockets(settings, environ, euid)
    explicit = Settings.from_env({"MIGCTL_SOCKET": "/x/s.sock"}, euid=7)
    assert discovery.serve_socket(explicit, {}, 7) == Path("/x/s.sock")


class slow_daemon:
    """A daemon stand-in on ``path``: ``/v1/health`` answers after ``health_s``, any other
    path after ``delay_s`` (a read that waits for the GPU lock while an apply holds it)."""

    def __init__(self, path: Path, delay_s: float, health_s: float = 0.0) -> None:
        import http.server
        import socketserver
        import time

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(health_s if self.path == "/v1/health" else delay_s)
                body = b'{"ok": true}'
                with contextlib.suppress(OSError):  # a client that gave up has gone
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True

    def __enter__(self) -> slow_daemon:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(30)
def test_the_probe_limit_bounds_the_probe_not_the_commands_after_it(tmp_path: Path) -> None:
    """A daemon found on a socket must answer its health probe within the probe's limit; the
    command's own requests then wait as long as through MIGCTL_URL (they once inherited the
    probe's 5 s and failed as "cannot reach the daemon" while an apply held the GPU lock)."""
    with slow_daemon(tmp_path / "migctl.sock", delay_s=1.5):
        client = discovery.probe_socket(tmp_path / "migctl.sock", timeout_s=0.5)
        with client:
            assert client.request("GET", "/v1/slow") == {"ok": True}
    with (
        slow_daemon(tmp_path / "silent.sock", delay_s=0.0, health_s=1.5),
        pytest.raises(MigctlError) as silent,
    ):
        discovery.probe_socket(tmp_path / "silent.sock", timeout_s=0.5)
    assert silent.value.exit_code == 10
    assert "is not answering: it did not answer within 0.5 s" in silent.value.message
