"""Service load benchmark: hundreds of clients lease and release MIG devices through the daemon.

Why this exists: the daemon promises that, under heavy concurrent use over its Unix socket, no
MIG device is granted twice, no lease is lost (every grant a client saw is released by it, and
no lease the clients never saw exists), and its memory stays flat. This script starts a real
``migctl serve`` on a simulated machine, applies 7 x 1g.10gb on every GPU, runs ``--clients``
clients (asyncio, one keep-alive connection each, spread over ``--processes`` processes) that loop
``acquire (wait) -> hold (uniform 0..hold ms) -> release`` for ``--duration`` seconds, samples
the daemon's RSS every second, then checks the clients' logs and the lease store. It writes
``bench/results/service_load.md``. Run it as::

    PYTHONPATH=src python -m bench.service_load --clients 200 --duration 30

Double grants are counted two ways: overlapping hold intervals in the clients' logs (a client
holds from the grant response until it sends the release, inside the store's interval) and
overlapping [created_at, ended_at] intervals in the store's history. ``tests/server/test_load.py``
runs :func:`run_clients` and :func:`check` at a small scale. Only tests import this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import resource
import shlex
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.lease_stress import machine_description, overlaps, percentile_ms

RESULTS = Path(__file__).parent / "results" / "service_load.md"


@dataclass(frozen=True)
class LoadSpec:
    clients: int
    duration_s: float
    hold_ms: float = 20.0
    wait_s: float = 120.0
    tag: str = "load"  # job name prefix of this run's leases


@dataclass
class ClientLog:
    grants: list[dict[str, Any]] = field(default_factory=list)  # lease_id, uuid, held, latencies
    errors: list[str] = field(default_factory=list)

    def merge(self, other: ClientLog) -> None:
        self.grants.extend(other.grants)
        self.errors.extend(other.errors)


class SocketHttp:
    """A minimal keep-alive HTTP/1.1 JSON client on one Unix socket connection.

    The load clients use this instead of httpx: on the 2-CPU VM httpx's asyncio client spends
    its CPU managing many connections (measured: 56 clients -> ~130 requests/s, 200 -> ~20,
    with the client process at 100% CPU and the daemon mostly idle), which would measure
    httpx, not the daemon. The tests talk to the daemon with httpx.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, socket_path: Path) -> SocketHttp:
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=1 << 20)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: migctl\r\nContent-Length: {len(payload)}\r\n"
        if payload:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        await self.writer.drain()
        status_line, *header_lines = (
            (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        )
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0"))
        data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), json.loads(data) if data else None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def _cycle(index: int, http: SocketHttp, spec: LoadSpec, log: ClientLog) -> None:
    body = {"wait_seconds": spec.wait_s, "job": f"{spec.tag}-{index}"}
    asked = time.monotonic()
    status, lease = await http.request("POST", "/v1/leases", body)
    got = time.monotonic()
    if status != 201:
        log.errors.append(f"client {index} acquire: HTTP {status} {lease}")
        return
    await asyncio.sleep(random.uniform(0, spec.hold_ms / 1000))
    releasing = time.monotonic()
    status, released = await http.request("DELETE", f"/v1/leases/{lease['lease_id']}")
    done = time.monotonic()
    if status != 200 or released["end_reason"] != "released":
        log.errors.append(f"client {index} release: HTTP {status} {released}")
    log.grants.append(
        {"lease_id": lease["lease_id"], "uuid": lease["uuid"], "held": (got, releasing),
         "acquire_s": got - asked, "release_s": done - releasing}
    )  # fmt: skip


async def _client(
    index: int, socket_path: Path, spec: LoadSpec, deadline: float, log: ClientLog
) -> None:
    http = await SocketHttp.connect(socket_path)
    try:
        while time.monotonic() < deadline:
            try:
                await _cycle(index, http, spec, log)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                log.errors.append(f"client {index}: {type(exc).__name__}: {exc}")
                await http.close()
                http = await SocketHttp.connect(socket_path)
    finally:
        await http.close()


async def run_clients(socket_path: Path, spec: LoadSpec, indexes: range) -> ClientLog:
    """``indexes`` clients on this event loop until ``spec.duration_s`` has passed."""
    log = ClientLog()
    deadline = time.monotonic() + spec.duration_s
    await asyncio.gather(*(_client(i, socket_path, spec, deadline, log) for i in indexes))
    return log


def _process_main(socket_path: Path, spec: LoadSpec, indexes: range, out: Path) -> None:
    log = asyncio.run(run_clients(socket_path, spec, indexes))
    out.write_text(json.dumps(asdict(log)))


def run_processes(socket_path: Path, spec: LoadSpec, processes: int, work_dir: Path) -> ClientLog:
    """The clients spread over ``processes`` processes (client CPU is not the daemon's)."""
    context = multiprocessing.get_context("spawn")
    parts = [range(i, spec.clients, processes) for i in range(processes)]
    outs = [work_dir / f"clients-{i}.json" for i in range(processes)]
    workers = [
        context.Process(target=_process_main, args=(socket_path, spec, part, out))
        for part, out in zip(parts, outs, strict=True)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    log = ClientLog()
    for worker, out in zip(workers, outs, strict=True):
        if worker.exitcode != 0 or not out.exists():
            log.errors.append(f"client process {worker.pid} exited with {worker.exitcode}")
            continue
        raw = json.loads(out.read_text())
        log.merge(ClientLog(grants=raw["grants"], errors=raw["errors"]))
    return log


def check(log: ClientLog, lease_db: Path, tag: str) -> dict[str, Any]:
    """No double grant (clients' logs, store history), no lost lease, for this run's leases."""
    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for grant in log.grants:
        start, end = grant["held"]
        held[grant["uuid"]].append((start, end))
    with sqlite3.connect(lease_db) as conn:
        rows = conn.execute(
            "SELECT lease_id, device_uuid, created_at, ended_at, end_reason FROM leases"
            " WHERE job_name LIKE ?",
            (f"{tag}-%",),
        ).fetchall()
    history: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _, uuid, created, ended, _ in rows:
        history[uuid].append((created, ended if ended is not None else float("inf")))
    seen = {grant["lease_id"] for grant in log.grants}
    stored = {row[0] for row in rows}
    return {
        "grants": len(log.grants),
        "double_grants_clients": sum(overlaps(v) for v in held.values()),
        "double_grants_store": sum(overlaps(v) for v in history.values()),
        "still_active": sum(1 for row in rows if row[3] is None),
        "not_released": sum(1 for row in rows if row[4] != "released"),
        "unseen_by_clients": len(stored - seen),
        "missing_in_store": len(seen - stored),
        "errors": len(log.errors),
        "devices_used": len(held),
    }


def verdict(checks: dict[str, Any]) -> bool:
    keys = ("double_grants_clients", "double_grants_store", "still_active", "not_released",
            "unseen_by_clients", "missing_in_store", "errors")  # fmt: skip
    return checks["grants"] > 0 and all(checks[key] == 0 for key in keys)


class RssSampler:
    """The daemon's resident memory (VmRSS, MiB) once a second, on a thread."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, float]] = []
        self.cpu_s: list[float] = []  # the daemon's CPU seconds (user + system) at each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set():
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.monotonic() - began, int(line.split()[1]) / 1024))
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu_s.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def slope_mib_per_min(self) -> float:
        """Least-squares slope over the second half of the run (after warm-up)."""
        half = self.samples[len(self.samples) // 2 :]
        if len(half) < 2:
            return 0.0
        return statistics.linear_regression([t for t, _ in half], [m for _, m in half]).slope * 60


def latency_row(log: ClientLog, wall_s: float) -> dict[str, float]:
    acquire = [g["acquire_s"] for g in log.grants]
    release = [g["release_s"] for g in log.grants]
    return {
        "cycles_per_s": len(log.grants) / wall_s,
        "requests_per_s": 2 * len(log.grants) / wall_s,
        "acquire_p50_ms": percentile_ms(acquire, 0.50),
        "acquire_p99_ms": percentile_ms(acquire, 0.99),
        "release_p50_ms": percentile_ms(release, 0.50),
        "release_p99_ms": percentile_ms(release, 0.99),
        "release_max_ms": max(release) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="migctl service load benchmark")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--hold-ms", type=float, default=20.0)
    parser.add_argument("--machine", default="dgx-h100")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from tests.server.daemon import Daemon

    spec = LoadSpec(args.clients, args.duration, hold_ms=args.hold_ms)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    # the clients are root (admins) on the socket: room for all of them in the admins' budget
    daemon = Daemon(args.machine, extra_args=("--admin-connections", str(args.clients + 16)))
    daemon.start()
    try:
        with daemon.client() as root:
            body = {"target": {"kind": "split", "n": 7}}
            job = root.post("/v1/apply", json=body).json()
            while root.get(f"/v1/jobs/{job['job_id']}").json()["status"] in {"queued", "running"}:
                time.sleep(0.1)
            devices = root.get("/v1/status").json()["mig_devices"]
        assert daemon.process is not None
        with tempfile.TemporaryDirectory() as work, RssSampler(daemon.process.pid) as rss:
            began, clients_before = time.monotonic(), _children_cpu_s()
            log = run_processes(daemon.socket_path, spec, args.processes, Path(work))
            wall_s = time.monotonic() - began
            clients_cpu_s = _children_cpu_s() - clients_before
        daemon.stop()
        checks = check(log, daemon.lease_db, spec.tag)
        summary = {
            "devices": devices,
            "wall_s": wall_s,
            "load_before": load_before,
            "daemon_cpu_percent": 100 * (rss.cpu_s[-1] - rss.cpu_s[0]) / wall_s,
            "clients_cpu_percent": 100 * clients_cpu_s / wall_s,
            **latency_row(log, wall_s),
            **checks,
        }
        write_report(args, summary, rss, log.errors, daemon.lease_db)
        print(json.dumps(summary, indent=1))
        return 0 if verdict(checks) else 1
    finally:
        daemon.cleanup()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_report(
    args: argparse.Namespace, s: dict[str, Any], rss: RssSampler, errors: list[str], db: Path
) -> None:
    command = "PYTHONPATH=src /work/main/.venv/bin/python -m bench.service_load " + shlex.join(
        sys.argv[1:] if sys.argv[1:] else []
    )
    rss_values = [m for _, m in rss.samples]
    trace = ", ".join(f"{m:.0f}" for _, m in rss.samples[:: max(1, len(rss.samples) // 16)])
    lines = [
        "# Service load benchmark",
        "",
        f"{args.clients} clients (asyncio, one keep-alive connection each over the Unix socket, "
        f"{args.processes} client "
        f"processes) loop acquire (wait) -> hold (uniform 0..{args.hold_ms:g} ms) -> release "
        f"against one `migctl serve` on a simulated {args.machine} split 7 x 1g.10gb per GPU "
        f"({s['devices']} MIG devices) for {args.duration:g} s. Acquire latency includes waiting "
        "for a free device (clients outnumber devices); release latency is one plain request.",
        "",
        f"## Run on {platform.node()}",
        "",
        *machine_description(db),
        "",
        "Command:",
        "",
        f"```\n{command}\n```",
        "",
        "| grants | wall s | lease cycles/s | requests/s | acquire p50 / p99 ms "
        "| release p50 / p99 / max ms | double grants (clients / store) | lost leases | errors "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['grants']} | {s['wall_s']:.1f} | {s['cycles_per_s']:.0f} | {s['requests_per_s']:.0f} "
        f"| {s['acquire_p50_ms']:.0f} / {s['acquire_p99_ms']:.0f} "
        f"| {s['release_p50_ms']:.1f} / {s['release_p99_ms']:.1f} / {s['release_max_ms']:.0f} "
        f"| {s['double_grants_clients']} / {s['double_grants_store']} "
        f"| {s['still_active'] + s['not_released'] + s['unseen_by_clients'] + s['missing_in_store']} "
        f"| {s['errors']} | {'PASS' if verdict(s) else 'FAIL'} |",
        "",
        f"Daemon RSS (MiB), sampled every second: first {rss_values[0]:.0f}, last "
        f"{rss_values[-1]:.0f}, max {max(rss_values):.0f}; slope over the second half "
        f"{rss.slope_mib_per_min():+.2f} MiB/min. Trace: {trace}.",
        "",
        f"CPU during the run: daemon {s['daemon_cpu_percent']:.0f}% of one CPU, client processes "
        f"{s['clients_cpu_percent']:.0f}% (of {os.cpu_count()} CPUs on this machine; load average "
        f"before the run {s['load_before']}).",
        "",
        "Lost leases = leases still active + ended other than by their client's release + leases "
        "in the store no client saw + grants a client saw that the store lacks.",
    ]
    if errors:
        lines += ["", "First errors:", "", *[f"- {e}" for e in errors[:10]]]
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
