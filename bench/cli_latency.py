"""Wall time of ``migctl list``, ``profiles`` and ``status``, next to nvidia-smi.

Why this exists: the core issue's target is "within 2x of nvidia-smi". This runs each
command N times as a fresh process (what a user or script pays) and reports the median
and p90, on a simulated DGX H100 (half its GPUs partitioned) and, with ``--real``, on the
real GPUs of this machine in the same run as ``nvidia-smi -L`` and ``nvidia-smi mig
-lgip`` (read-only: MIGCTL_READ_ONLY=1 is forced). ``--via URL`` also times the three verbs
through a running migctl daemon (``MIGCTL_URL=URL``). Usage::

    python -m bench.cli_latency --out bench/results            # simulated only
    python -m bench.cli_latency --out bench/results --real     # plus the real GPU
    python -m bench.cli_latency --real --via unix:///run/migctl/migctl.sock
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIGCTL = [sys.executable, "-m", "migctl"]
FLOORS = {  # what any Python CLI pays before doing its own work
    "python -I -S -c pass (interpreter alone)": [sys.executable, "-I", "-S", "-c", "pass"],
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "import typer, rich (floor)": [
        sys.executable,
        "-c",
        "import typer, rich.console, rich.table",
    ],
    "import pynvml; nvmlInit() (floor)": [
        sys.executable,
        "-c",
        "import pynvml; pynvml.nvmlInit(); pynvml.nvmlDeviceGetCount()",
    ],
}


def timed(command: list[str], env: dict[str, str], repeat: int) -> dict[str, float]:
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm the page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
    }


def prepare_sim(env: dict[str, str]) -> None:
    """Partition GPUs 0-3 of the simulated DGX H100 so that status has work to show."""
    for args in (
        ["mode", "enable", "-i", "0,1,2,3"],
        ["gi", "create", "19,19,14,9", "-C", "-i", "0,1,2,3"],
    ):
        subprocess.run(
            [*MIGCTL, "--sim", "dgx-h100", *args], env=env, capture_output=True, check=True
        )


def sim_rows(repeat: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "MIGCTL_SIM_DIR": state}
        env.pop("MIGCTL_READ_ONLY", None)  # the simulated machine may change; the real one never
        prepare_sim(env)
        rows = []
        for verb in ("list", "profiles", "status"):
            result = timed([*MIGCTL, "--sim", "dgx-h100", verb], env, repeat)
            rows.append({"where": "simulated dgx-h100", "command": f"migctl {verb}", **result})
        return rows


def real_rows(repeat: int, via: str | None = None) -> list[dict[str, object]]:
    env = {**os.environ, "MIGCTL_READ_ONLY": "1"}
    env.pop("MIGCTL_SIM", None)
    rows: list[dict[str, object]] = []
    pairs = [
        ("list", ["nvidia-smi", "-L"]),
        ("profiles", ["nvidia-smi", "mig", "-lgip"]),
        ("status", None),
    ]
    for label, floor in FLOORS.items():
        rows.append({"where": "real GPU", "command": label, **timed(floor, env, repeat)})
    for verb, reference in pairs:
        mine = timed([*MIGCTL, verb], env, repeat)
        row: dict[str, object] = {"where": "real GPU", "command": f"migctl {verb}", **mine}
        if reference is not None and shutil.which(reference[0]):
            theirs = timed(reference, env, repeat)
            row["reference"] = " ".join(reference)
            row["reference_median_ms"] = theirs["median_ms"]
            row["ratio"] = mine["median_ms"] / theirs["median_ms"]
        rows.append(row)
    return rows if via is None else rows + daemon_rows(env, via, repeat)


def daemon_rows(env: dict[str, str], via: str, repeat: int) -> list[dict[str, object]]:
    """The verbs through the daemon at ``via`` (which reads the same real GPUs)."""
    remote = {**env, "MIGCTL_URL": via}
    remote.pop("MIGCTL_LOCAL", None)
    return [
        {
            "where": "real GPU, through the daemon",
            "command": f"migctl {verb}",
            **timed([*MIGCTL, verb], remote, repeat),
        }
        for verb in ("list", "profiles", "status")
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"({sys.executable}, {_pth_files()} .pth file(s) run at start-up)"
    )


def _pth_files() -> int:
    """How many ``.pth`` files the interpreter's site directories hold (each costs start-up)."""
    import site

    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return sum(len(list(Path(f).glob("*.pth"))) for f in folders if Path(f).is_dir())


def markdown(rows: list[dict[str, object]], command: str) -> str:
    lines = [
        "# CLI latency: migctl vs nvidia-smi",
        "",
        f"Machine: {machine()}. Command: `{command}`. Each row: median and p90 of fresh processes.",
        "",
        "| where | command | median ms | p90 ms | reference | reference median ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref_ms = r.get("reference_median_ms")
        ratio = r.get("ratio")
        lines.append(
            f"| {r['where']} | `{r['command']}` | {float(str(r['median_ms'])):.0f} | "
            f"{float(str(r['p90_ms'])):.0f} | {r.get('reference', '')} | "
            f"{'' if ref_ms is None else f'{float(str(ref_ms)):.0f}'} | "
            f"{'' if ratio is None else f'{float(str(ratio)):.2f}'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--real", action="store_true", help="also time the real GPU (read-only)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--via", default=None, help="also time the verbs through this daemon URL")
    parser.add_argument(
        "--name", default=None, help="result file stem (default: cli_latency[-real])"
    )
    args = parser.parse_args()
    rows = sim_rows(args.repeat)
    if args.real:
        rows += real_rows(args.repeat, args.via)
    stem = args.name or ("cli_latency-real" if args.real else "cli_latency")
    command = "python -m bench.cli_latency " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(markdown(rows, command))
    (args.out / f"{stem}.json").write_text(
        json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n"
    )
    print(markdown(rows, command))


if __name__ == "__main__":
    main()
