"""Start ``migctl run``'s command as a child whose PID is known before it runs.

Why this exists: the lease must name the *child* as its holder (so it ends when the child ends,
even if migctl itself is killed), yet the child must start with ``CUDA_VISIBLE_DEVICES`` naming
the leased device. So migctl forks a stub first: the stub waits on a pipe while the parent
leases a device for the stub's PID, then receives the device's variables and ``exec``s the
command in place (same PID, same start time, so the lease's liveness check holds). A second,
close-on-exec pipe reports a failed ``exec`` (command not found: exit 127; not executable: 126),
and stays silent when ``exec`` succeeds. If the parent dies before sending, the stub reads EOF
and exits without running anything. The stub restores default signal dispositions and an empty
signal mask, as ``subprocess`` does.

The child is *not* reaped when it ends: :meth:`StubChild.poll` and :meth:`StubChild.wait` only
look (``waitid`` with ``WNOWAIT``), so the ended command stays a zombie of this process until
:meth:`StubChild.reap`. The lease store takes a zombie whose parent still runs as a holder that
is being wound up, so the runner releases the lease first and reaps after: a concurrent sweep
cannot record a normal exit as "holder died". Importers: ``migctl.tenancy.runner`` only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
from collections.abc import Mapping, Sequence
from typing import NoReturn

from migctl.errors import CommandNotExecutableError, CommandNotFoundError, MigctlError

# Signals whose disposition the stub resets before exec (Python ignores SIGPIPE and SIGXFSZ and
# handles SIGINT itself; the command must start with the defaults).
RESET_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGCHLD,
)
ABANDONED_EXIT = 125  # the stub's exit code when the parent gave up before starting it


class StubChild:
    """A forked child that runs ``argv`` once :meth:`start` hands it its extra variables."""

    def __init__(self, pid: int, go_fd: int, error_fd: int, argv: Sequence[str]) -> None:
        self.pid = pid
        self.argv = tuple(argv)
        self._go_fd: int | None = go_fd
        self._error_fd: int | None = error_fd
        self.returncode: int | None = None  # the shell's exit code once it has ended
        self.reaped = False

    @classmethod
    def spawn(cls, argv: Sequence[str]) -> StubChild:
        """Fork the stub; it blocks until :meth:`start` or until this process exits."""
        go_read, go_write = os.pipe()
        error_read, error_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            _stub_main(argv, go_read, error_write, parent_ends=(go_write, error_read))
        os.close(go_read)
        os.close(error_write)
        return cls(pid, go_write, error_read, argv)

    def start(self, extra_env: Mapping[str, str]) -> None:
        """Let the stub exec the command with ``extra_env`` added; raise if exec failed."""
        assert self._go_fd is not None and self._error_fd is not None, "start() runs once"
        go_fd, self._go_fd = self._go_fd, None
        try:
            _write_all(go_fd, json.dumps(dict(extra_env)).encode())
        except BrokenPipeError:
            pass  # the stub is already gone: the wait below reports how it ended
        finally:
            os.close(go_fd)
        report = self._read_error_report()
        if report:
            self.wait()
            raise _exec_error(self.argv[0], int(report))

    def _read_error_report(self) -> str:
        assert self._error_fd is not None
        error_fd, self._error_fd = self._error_fd, None
        try:
            return _read_all(error_fd).decode(errors="replace").strip()
        finally:
            os.close(error_fd)

    def poll(self) -> int | None:
        """The exit code (128 + N if signal N killed it) once the child has ended, else None.

        Does not reap: the ended child stays a zombie until :meth:`reap`.
        """
        if self.returncode is None:
            ended = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if ended is not None and ended.si_pid == self.pid:
                self.returncode = _shell_exit_code(ended)
        return self.returncode

    def wait(self) -> int:
        """Block until the child ends; its exit code. Does not reap (see :meth:`reap`)."""
        if self.returncode is None:
            ended = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            assert ended is not None  # without WNOHANG, waitid returns only once it has ended
            self.returncode = _shell_exit_code(ended)
        return self.returncode

    def stop(self) -> None:
        """Make sure the child has ended (killing it if it still runs); it stays unreaped."""
        for fd in (self._go_fd, self._error_fd):
            if fd is not None:
                os.close(fd)
        self._go_fd = self._error_fd = None
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()

    def reap(self) -> None:
        """Collect the ended child, so no zombie is left behind (call after :meth:`stop`)."""
        if not self.reaped:
            self.stop()
            os.waitpid(self.pid, 0)
            self.reaped = True


def _shell_exit_code(ended: os.waitid_result) -> int:
    """The shell's view of how a child ended: its exit code, or 128 + N when signal N killed it."""
    if ended.si_code == os.CLD_EXITED:
        return ended.si_status
    return 128 + ended.si_status


def _exec_error(command: str, code: int) -> MigctlError:
    reason = os.strerror(code)
    if code == errno.ENOENT:
        return CommandNotFoundError(
            f"command not found: {command}",
            hint="check the name and your PATH; put the command after `--`, "
            "e.g. migctl run --profile 1g.10gb -- python train.py",
            context={"command": command},
        )
    return CommandNotExecutableError(
        f"cannot execute {command}: {reason}",
        hint="check that it is an executable file (chmod +x) with a valid interpreter line",
        context={"command": command, "errno": code},
    )


def _stub_main(
    argv: Sequence[str], go_fd: int, error_fd: int, parent_ends: tuple[int, int]
) -> NoReturn:
    """The forked child: wait for the go-ahead, then exec; never returns into migctl."""
    code = 127
    try:
        for fd in parent_ends:  # else the stub holds the go pipe open and never sees EOF
            os.close(fd)
        for sig in RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        payload = _read_all(go_fd)
        if not payload:
            code = ABANDONED_EXIT
        else:
            env = {**os.environ, **json.loads(payload)}
            os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        with contextlib.suppress(OSError):
            _write_all(error_fd, str(exc.errno or errno.ENOEXEC).encode())
    except BaseException:  # nothing may unwind into the parent's code in this child
        pass
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
