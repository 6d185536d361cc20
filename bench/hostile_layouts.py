"""Hostile layouts: how long and how much memory a refusal costs, through the CLI and the daemon.

Why this exists: a count of a billion in a 120-byte ``POST /v1/plan`` grew the daemon to 5 GB,
a 543-byte alias bomb took it 26 s and 2.77 GB, 60,000 nested brackets answered 500, and
``plan --model h100 --split 1000000000`` hung. Each must now be a clear refusal in well under
a second, with memory that does not grow with the number asked for. The tests check the
refusals (exit code, HTTP status, message) without timing them; this script measures them:
each case through ``migctl plan`` in a fresh process (wall time and peak RSS of that process)
and through one running ``migctl serve`` (wall time of the request and the daemon's peak RSS,
VmHWM, before and after all of them). It writes ``bench/results/hostile_layouts.md``::

    PYTHONPATH=src:. python -m bench.hostile_layouts

Only this script runs it; it imports the shared hostile inputs of the tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BILLION = 1_000_000_000
Row = tuple[str, int, tuple[float, float, int] | None, tuple[float, int] | None]


def cases() -> list[tuple[str, list[str] | None, dict[str, object] | None, str]]:
    """(name, CLI arguments after ``plan``, API body, the file's text or "")."""
    from tests.unit.layout_attacks import alias_bomb, deep_nesting, mig_parted_count, native_count

    files = [
        ('mig-parted "1g.10gb": 10^9', mig_parted_count("1g.10gb", BILLION)),
        ("native count: 10^9", native_count("1g.10gb", BILLION)),
        ('mig-parted "1c.7g.80gb": 10^9', mig_parted_count("1c.7g.80gb", BILLION)),
        ("alias bomb, 7 levels of 9", alias_bomb(7, 9)),
        ("nesting 60,000 deep", deep_nesting(60000)),
    ]
    found: list[tuple[str, list[str] | None, dict[str, object] | None, str]] = [
        (name, ["-f", "{file}"], {"target": {"kind": "layout", "text": text}}, text)
        for name, text in files
    ]
    found.append((f"--split {BILLION}", ["--model", "h100", "--split", str(BILLION)], None, ""))
    demand = "100000000x1g.10gb"
    body: dict[str, object] = {"target": {"kind": "demand", "demand": demand}}
    found.append((f"--demand {demand}", ["--demand", demand], body, ""))
    return found


def run_cli(argv: list[str], text: str, machine: str) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, exit code) of ``migctl plan`` in a fresh process."""
    with tempfile.TemporaryDirectory() as work:
        layout = Path(work) / "layout.yaml"
        layout.write_text(text)
        args = [a.replace("{file}", str(layout)) for a in argv]
        sim = [] if "--model" in args else ["--sim", machine]
        env = {**os.environ, "MIGCTL_SIM_DIR": work, "MIGCTL_LOCAL": "1"}
        command = [sys.executable, "-m", "migctl", *sim, "plan", *args]
        began = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cost of refusing hostile layouts")
    parser.add_argument("--machine", default="h100-single")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from tests.server.daemon import Daemon

    rows: list[Row] = []
    daemon = Daemon(args.machine).start()
    try:
        assert daemon.process is not None
        before = peak_mib(daemon.process.pid)
        with daemon.client() as root:
            for name, cli_args, body, text in cases():
                cli = run_cli(cli_args, text, args.machine) if cli_args else None
                api = None
                if body is not None:
                    began = time.perf_counter()
                    status = root.post("/v1/plan", json=body).status_code
                    api = (time.perf_counter() - began, status)
                rows.append((name, len(text.encode()), cli, api))
        after = peak_mib(daemon.process.pid)
    finally:
        daemon.cleanup()
    write_report(args, rows, before, after)
    return 0


def write_report(args: argparse.Namespace, rows: list[Row], before: float, after: float) -> None:
    lines = [
        "# Hostile layouts: the cost of a refusal",
        "",
        "Each input through `migctl plan` in a fresh process (simulated "
        f"{args.machine}, or `--model h100` offline) and through one running `migctl serve` "
        "(`POST /v1/plan`). Before the fixes of issue 11: the count of 10^9 grew the daemon from "
        "160 MB to 5 GB until killed and ended the CLI in MemoryError, the alias bomb took the "
        "daemon 26 s and 2.77 GB, the nesting answered 500 (exit 70 from the CLI), and "
        "`--split 10^9` hung.",
        "",
        f"## Run on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()})",
        "",
        "Command:",
        "",
        "```\nPYTHONPATH=src:. python -m bench.hostile_layouts\n```",
        "",
        "| input | bytes | CLI exit | CLI wall s | CLI peak RSS MiB | API status | API wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, size, cli, api in rows:
        cli_cells = f"{cli[2]} | {cli[0]:.2f} | {cli[1]:.0f}" if cli else "- | - | -"
        api_cells = f"{api[1]} | {api[0]:.3f}" if api else "- (the API bounds `split` to 1-8) | -"
        lines.append(f"| {name} | {size or '-'} | {cli_cells} | {api_cells} |")
    lines += [
        "",
        f"The daemon's peak RSS (VmHWM): {before:.0f} MiB before the requests, {after:.0f} MiB "
        "after all of them.",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hostile_layouts.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
