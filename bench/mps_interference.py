"""MPS interference on a real GPU: a latency victim beside an aggressor, at several SM shares.

Why this exists: soft devices (CUDA MPS shares) must come with honest numbers: how much a
share protects a latency-sensitive job from a neighbour, how much plain time-slicing
hurts, what four equal shares give in all, and that the pinned memory limit holds. Each
case runs its clients as separate processes (``bench/mps_workers.py``) that start together
and measure for ``--duration-s``; MPS cases go through a private MPS control daemon
(``CUDA_MPS_PIPE_DIRECTORY``/``CUDA_MPS_LOG_DIRECTORY`` under ``--mps-root``) that is
always quit at the end (``finally`` and ``atexit``), and every MPS client is checked to be
in the daemon's client list. Nothing here changes a GPU setting (compute mode, MIG, clocks).

How a client is launched is pluggable (:class:`Launcher`): raw environment variables with a
private daemon (``--launcher env``, the same variables ``migctl.mps.client_environment``
sets), or ``migctl run --share N% --parent GPU --`` (``--launcher migctl``: migctl leases a
soft device and runs its own MPS daemon; two uncapped clients become ``--oversubscribe`` with
the memory split, since memory limits are hard). Usage (on the GPU machine; then the report,
anywhere)::

    python3 bench/mps_interference.py --out OUT [--duration-s 6] [--smoke]
    python3 bench/mps_interference.py --out OUT --launcher migctl --migctl "python3 -m migctl"
    python -m bench.mps_interference --report OUT/mps_interference.json --out bench/results

The report (``bench/mps_report.py``) writes the markdown table, the guidance table and the
PNG plot.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make its package (bench/) importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mps_launchers import (
    Case,
    ClientSpec,
    EnvLauncher,
    Launcher,
    MigctlLauncher,
    PlainLauncher,
    through_migctl,
)

CONTROL = "nvidia-cuda-mps-control"
RESULT = "mps_interference.json"
GIB_MIB = 1024


def pair(name: str, victim_share: int | None, aggressor: str, aggressor_share: int | None) -> Case:
    mps = victim_share is not None
    return Case(
        name,
        mps,
        (
            ClientSpec("victim", "victim", victim_share),
            ClientSpec("aggressor", aggressor, aggressor_share),
        ),
    )


def matrix(smoke: bool) -> list[Case]:
    """The cases, in run order (plain ones first, then the MPS ones)."""
    probe = (18.0, 14.0)
    if smoke:
        return [
            Case("smoke-plain-victim", False, (ClientSpec("victim", "victim"),)),
            Case(
                "smoke-mps-50-limit16G",
                True,
                (ClientSpec("victim", "victim", 50, 16 * GIB_MIB, probe),),
            ),
        ]
    quad = tuple(ClientSpec(f"gemm{n}", "gemm", 25, 16 * GIB_MIB, probe) for n in range(4))
    return [
        Case("solo-victim", False, (ClientSpec("victim", "victim"),)),
        Case("solo-gemm", False, (ClientSpec("aggressor", "gemm"),)),
        Case("solo-copy", False, (ClientSpec("aggressor", "copy"),)),
        pair("timeslice-gemm", None, "gemm", None),
        Case("mps-victim-alone-25", True, (ClientSpec("victim", "victim", 25),)),
        pair("mps-100-100-gemm", 100, "gemm", 100),
        pair("mps-50-50-gemm", 50, "gemm", 50),
        pair("mps-25-75-gemm", 25, "gemm", 75),
        pair("mps-75-25-gemm", 75, "gemm", 25),
        pair("mps-90-10-gemm", 90, "gemm", 10),
        pair("mps-50-50-copy", 50, "copy", 50),
        Case("mps-4x25-gemm", True, quad, "4 equal clients, 16G pinned limit each"),
    ]


def run(
    argv: Sequence[str], timeout_s: float = 30, env: dict[str, str] | None = None, stdin: str = ""
) -> dict[str, Any]:
    """A read-only or MPS command: its exit code and output (never raises)."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"argv": list(argv), "rc": None, "stdout": "", "stderr": str(exc)}
    return {"argv": list(argv), "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


class MpsDaemon:
    """A private MPS control daemon for one GPU; :meth:`quit` runs however the run ends."""

    def __init__(self, root: Path, gpu_uuid: str, program: Sequence[str] = (CONTROL,)) -> None:
        self.program = list(program)
        self.pipe_dir, self.log_dir = root / "pipe", root / "log"
        self.env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": gpu_uuid,
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
            "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir),
        }
        self.started = False

    def command(self, line: str) -> dict[str, Any]:
        return run(self.program, 20, self.env, line + "\n")

    def start(self) -> dict[str, Any]:
        self.pipe_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.quit)
        self.started = True
        facts: dict[str, Any] = {"start": run([*self.program, "-d"], 30, self.env)}
        time.sleep(0.5)
        facts.update(self.files())
        return facts

    def files(self) -> dict[str, Any]:
        """What the daemon keeps in its pipe directory (its pid file among them)."""
        pid_file = self.pipe_dir / "nvidia-cuda-mps-control.pid"
        return {
            "pipe_dir_files": sorted(p.name for p in self.pipe_dir.iterdir()),
            "pid_file": pid_file.read_text().strip() if pid_file.exists() else None,
        }

    def clients(self) -> tuple[dict[str, list[int]], dict[str, str]]:
        """Server -> client PIDs, and the raw replies (to record the real format)."""
        raw = {"get_server_list": self.command("get_server_list")["stdout"]}
        found: dict[str, list[int]] = {}
        for server in raw["get_server_list"].split():
            reply = self.command(f"get_client_list {server}")["stdout"]
            raw[f"get_client_list {server}"] = reply
            found[server] = [int(p) for p in reply.split() if p.isdigit()]
        return found, raw

    def quit(self) -> dict[str, Any]:
        if not self.started:
            return {}
        self.started = False
        result = self.command("quit")
        time.sleep(1.0)
        result["after"] = self.files()
        return result


def start_clients(
    case: Case, launcher: Launcher, case_dir: Path, duration_s: float
) -> list[subprocess.Popen[bytes]]:
    processes = []
    script = str(Path(__file__).resolve())
    for spec in case.clients:
        extra = 1.5 if spec.role != "victim" and len(case.clients) > 1 else 0.0
        worker = [
            sys.executable,
            script,
            "--role",
            spec.role,
            "--name",
            spec.name,
            "--case-dir",
            str(case_dir),
            "--duration-s",
            str(duration_s + extra),
        ]
        if spec.probe_gib is not None:
            worker += ["--probe-gib", str(spec.probe_gib[0]), str(spec.probe_gib[1])]
        argv, env = launcher.launch(spec, worker)
        log = open(case_dir / f"{spec.name}.log", "wb")  # noqa: SIM115 (closed with the process)
        processes.append(
            subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        )
    return processes


def run_case(
    case: Case, launcher: Launcher, out: Path, duration_s: float, daemon: MpsDaemon | None
) -> dict[str, Any]:
    """Start the clients, wait until all are ready, release them together, collect results."""
    case_dir = out / case.name
    case_dir.mkdir(parents=True, exist_ok=True)
    processes = start_clients(case, launcher, case_dir, duration_s)
    record: dict[str, Any] = {"case": asdict(case), "clients": {}}
    try:
        ready = _wait_ready(case, case_dir, processes)
        if daemon is not None:
            servers, record["mps_replies"] = daemon.clients()
            attached = {p for pids in servers.values() for p in pids}
            record["attached"] = {name: pid in attached for name, pid in ready.items()}
        (case_dir / "go").write_text("go")
        for process in processes:
            process.wait(timeout=duration_s + 120)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        record["error"] = str(exc)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for spec in case.clients:
        path = case_dir / f"{spec.name}.json"
        record["clients"][spec.name] = (
            json.loads(path.read_text())
            if path.exists()
            else {"error": (case_dir / f"{spec.name}.log").read_text(errors="replace")[-2000:]}
        )
    return record


def _wait_ready(
    case: Case, case_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> dict[str, int]:
    deadline = time.monotonic() + 180
    while True:
        ready = {
            s.name: json.loads((case_dir / f"{s.name}.ready").read_text())["pid"]
            for s in case.clients
            if (case_dir / f"{s.name}.ready").exists()
        }
        if len(ready) == len(case.clients):
            return ready
        failed = [p.args for p in processes if p.poll() is not None]
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"case {case.name}: clients not ready (exited: {len(failed)})")
        time.sleep(0.05)


def mps_processes() -> str:
    """MPS daemons and servers still in the process table (``Z``: exited, not yet reaped)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition("(")[2].rpartition(")")
        if name.startswith("nvidia-cuda-mps"):
            found.append(f"{stat.parent.name} {name} {rest.split()[0]}")
    return "; ".join(sorted(found))


def gpu_facts() -> dict[str, Any]:
    """Read-only facts: the GPU, its MIG and compute modes, the MPS control program."""
    query = run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,uuid,mig.mode.current,compute_mode,driver_version",
            "--format=csv,noheader",
        ]
    )
    first = query["stdout"].splitlines()[0].split(", ") if query["stdout"] else []
    return {
        "query": query,
        "gpu_uuid": first[2] if len(first) > 2 else "",
        "compute": run(["nvidia-smi", "-q", "-d", "COMPUTE"]),
        "control_program": shutil.which(CONTROL),
    }


def front_end_without_daemon(pipe_dir: Path) -> dict[str, Any]:
    """What the control front end says where no daemon runs (read only)."""
    env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(pipe_dir)}
    return run([CONTROL], 20, env, "get_server_list\n")


def measure(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    facts = gpu_facts()
    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "duration_s": args.duration_s,
        "facts": facts,
        "cases": [],
    }
    root = Path(args.mps_root)
    report["front_end_without_daemon"] = front_end_without_daemon(root / "nodaemon")
    daemon = MpsDaemon(root, facts["gpu_uuid"])
    plain = PlainLauncher(facts["gpu_uuid"], root / "nodaemon")
    started = time.monotonic()
    try:
        for case in matrix(args.smoke):
            if time.monotonic() - started > args.budget_s:
                report["cases"].append({"case": asdict(case), "skipped": "time budget"})
                continue
            launcher, launched, checker = _launcher(args, facts["gpu_uuid"], case, daemon, report)
            print(f"case {launched.name}", flush=True)
            try:
                record = run_case(
                    launched, launcher or plain, root / "cases", args.duration_s, checker
                )
            except OSError as exc:
                record = {"case": asdict(case), "error": str(exc)}
            report["cases"].append(record)
    finally:
        report["quit"] = daemon.quit()
        report["control_processes_after_quit"] = mps_processes()
        path = out / RESULT
        path.write_text(json.dumps(report, indent=1))
    return path


def _launcher(
    args: argparse.Namespace,
    gpu_uuid: str,
    case: Case,
    daemon: MpsDaemon,
    report: dict[str, Any],
) -> tuple[Launcher | None, Case, MpsDaemon | None]:
    """How an MPS ``case`` is launched (None: without MPS), the case as launched, and the
    daemon whose client list proves attachment (None: `migctl run` checks it itself)."""
    if not case.mps:
        return None, case, None
    if args.launcher == "migctl":
        shared = through_migctl(case, int(args.gpu_memory_mib))
        over = sum(spec.share or 100 for spec in shared.clients) > 100
        return MigctlLauncher(tuple(args.migctl.split()), gpu_uuid, over), shared, None
    if not daemon.started:
        report["daemon"] = daemon.start()
    return EnvLauncher(gpu_uuid, daemon.pipe_dir), case, daemon


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--duration-s", type=float, default=6.0)
    parser.add_argument("--smoke", action="store_true", help="a short check of MPS and torch")
    parser.add_argument("--mps-root", default="/tmp/migctl-mps-bench")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip cases after this")
    parser.add_argument("--report", help="render the report from this JSON (no GPU needed)")
    parser.add_argument(
        "--note", default="", help="with --report: a file whose text ends the report"
    )
    parser.add_argument(
        "--launcher",
        choices=("env", "migctl"),
        default="env",
        help="env: a private MPS daemon and the client variables; migctl: `migctl run --share`",
    )
    parser.add_argument("--migctl", default="migctl", help="with --launcher migctl: its argv")
    parser.add_argument(
        "--gpu-memory-mib", default="81559", help="with --launcher migctl: split past 100%%"
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--case-dir", help=argparse.SUPPRESS)
    parser.add_argument("--probe-gib", type=float, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        from bench.mps_workers import run_role

        run_role(
            args.role,
            args.duration_s,
            Path(args.case_dir),
            args.name,
            tuple(args.probe_gib) if args.probe_gib else None,
        )
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that finally quits MPS
    path = Path(args.report) if args.report else measure(args)
    from bench.mps_report import write_report

    note = Path(args.note).read_text() if args.note else ""
    for written in write_report(path, Path(args.out), note):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
