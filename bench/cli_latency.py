"""Wall time of ``migctl list``, ``profiles`` and ``status`` against a bare Python + pynvml listing.

Why this exists: issue 13's target is ``migctl list`` and ``migctl profiles`` within 2x of the
floor any Python tool pays for the same listing: a fresh interpreter that imports pynvml, calls
``nvmlInit`` and lists every GPU and MIG device with its UUID. This runs each command N times
as a fresh process (what a user or script pays, with its bytecode cached as an installed
package has it: ``PYTHONDONTWRITEBYTECODE`` is dropped) and reports the median and p90, and
each verb's ratio to that floor measured in the same run:

* on a simulated DGX H100 (half its GPUs partitioned), against the same bare listing over the
  simulator's NVML library (indicative: the simulator's own start-up is in both);
* on the real GPUs of this machine when NVML answers (``--real``, or found by itself; read-only:
  ``MIGCTL_READ_ONLY=1`` is forced and no simulator is used), against the bare pynvml listing
  and ``nvidia-smi -L`` where it is installed;
* with ``--via URL``, also through a running migctl daemon (``MIGCTL_URL=URL``).

Usage::

    python -m bench.cli_latency --out bench/results            # simulated, and real if found
    python -m bench.cli_latency --out DIR --real --repeat 30   # on a GPU server
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
VERBS = ("list", "profiles", "status")
LISTING = """
import pynvml as nv
nv.nvmlInit()
for i in range(nv.nvmlDeviceGetCount()):
    h = nv.nvmlDeviceGetHandleByIndex(i)
    print(i, nv.nvmlDeviceGetName(h), nv.nvmlDeviceGetUUID(h), nv.nvmlDeviceGetMemoryInfo(h).total)
    try:
        current, _ = nv.nvmlDeviceGetMigMode(h)
    except nv.NVMLError:
        continue
    for j in range(nv.nvmlDeviceGetMaxMigDeviceCount(h) if current else 0):
        try:
            m = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
        except nv.NVMLError:
            continue
        print("  MIG", nv.nvmlDeviceGetUUID(m), nv.nvmlDeviceGetMemoryInfo(m).total)
nv.nvmlShutdown()
"""
ON_SIMULATOR = """
import os, pathlib, pynvml
from migctl.catalog import load_catalog
from migctl.sim import SimLibrary, open_sim
machine = open_sim("dgx-h100", load_catalog(), pathlib.Path(os.environ["MIGCTL_SIM_DIR"]))
pynvml.nvmlLib = SimLibrary(machine)
"""
PASS = "python -c pass (interpreter)"
FLOOR = "bare Python + pynvml listing (floor)"


def timed(command: list[str], env: dict[str, str], repeat: int) -> dict[str, float]:
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm caches, write .pyc
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "min_ms": samples[0],
    }


def rows_for(
    where: str,
    env: dict[str, str],
    repeat: int,
    *,
    floor_source: str,
    migctl: list[str],
    references: dict[str, list[str]],
) -> list[dict[str, object]]:
    """The interpreter, the floor, any reference program, and migctl's verbs with their ratios."""
    rows: list[dict[str, object]] = [
        {"where": where, "command": PASS, **timed([sys.executable, "-c", "pass"], env, repeat)}
    ]
    floor = timed([sys.executable, "-c", floor_source], env, repeat)
    rows.append({"where": where, "command": FLOOR, **floor})
    measured = {"floor": floor["median_ms"]}
    for name, command in references.items():
        if shutil.which(command[0]):
            found = timed(command, env, repeat)
            measured[name] = found["median_ms"]
            rows.append({"where": where, "command": name, **found})
    for verb in VERBS:
        mine = timed([*migctl, verb], env, repeat)
        ratios = {f"ratio_{k}": mine["median_ms"] / ms for k, ms in measured.items()}
        ratios["ratio_floor_min"] = mine["min_ms"] / floor["min_ms"]
        rows.append({"where": where, "command": f"migctl {verb}", **mine, **ratios})
    return rows


def prepare_sim(env: dict[str, str]) -> None:
    """Partition GPUs 0-3 of the simulated DGX H100 so that every verb has work to show."""
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
        for name in ("MIGCTL_READ_ONLY", "MIGCTL_URL", "MIGCTL_SIM"):
            env.pop(name, None)  # the simulated machine may change; the real one never
        prepare_sim(env)
        migctl = [*MIGCTL, "--sim", "dgx-h100"]
        floor = ON_SIMULATOR + LISTING
        return rows_for(
            "simulated dgx-h100", env, repeat, floor_source=floor, migctl=migctl, references={}
        )


def real_env() -> dict[str, str]:
    env = {**os.environ, "MIGCTL_READ_ONLY": "1"}
    for name in ("MIGCTL_SIM", "MIGCTL_URL"):
        env.pop(name, None)
    return env


def nvml_answers() -> bool:
    """Whether this machine has an NVIDIA driver that NVML can open."""
    probe = [sys.executable, "-c", "import pynvml; pynvml.nvmlInit()"]
    return subprocess.run(probe, env=real_env(), capture_output=True, check=False).returncode == 0


def real_rows(repeat: int, via: str | None) -> list[dict[str, object]]:
    env = real_env()
    nvidia_smi = {"nvidia-smi -L": ["nvidia-smi", "-L"]}
    rows = rows_for(
        "real GPU", env, repeat, floor_source=LISTING, migctl=MIGCTL, references=nvidia_smi
    )
    if via is not None:
        remote = {**env, "MIGCTL_URL": via}
        remote.pop("MIGCTL_LOCAL", None)
        rows += rows_for(
            "real GPU, through the daemon",
            remote,
            repeat,
            floor_source=LISTING,
            migctl=MIGCTL,
            references={},
        )
    return rows


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


def _ms(value: object) -> str:
    return "" if value is None else f"{float(str(value)):.0f}"


def _ratio(value: object) -> str:
    return "" if value is None else f"{float(str(value)):.2f}x"


def markdown(rows: list[dict[str, object]], command: str) -> str:
    lines = [
        "# CLI latency: migctl against a bare Python + pynvml listing",
        "",
        f"Machine: {machine()}. Command: `{command}`. Each row: median and p90 of fresh "
        "processes; ratios: the verb's median over the floor's (and over `nvidia-smi -L`'s) "
        "in the same run (best of N over best of N too: steadier on a busy machine). Goal (issue "
        "13): `list` and `profiles` within 2x of the floor.",
        "",
        "| where | command | median ms | p90 ms | min ms | / floor | / floor (min) "
        "| / nvidia-smi -L |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['where']} | `{r['command']}` | {_ms(r['median_ms'])} | {_ms(r['p90_ms'])} | "
            f"{_ms(r['min_ms'])} | {_ratio(r.get('ratio_floor'))} | "
            f"{_ratio(r.get('ratio_floor_min'))} | {_ratio(r.get('ratio_nvidia-smi -L'))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--real", action="store_true", help="time the real GPU (read-only)")
    parser.add_argument("--sim-only", action="store_true", help="never time the real GPU")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--via", default=None, help="also time the verbs through this daemon URL")
    parser.add_argument("--name", default=None, help="result file stem")
    args = parser.parse_args()
    real = args.real or (not args.sim_only and nvml_answers())
    rows = sim_rows(args.repeat)
    if real:
        rows += real_rows(args.repeat, args.via)
    stem = args.name or ("cli_latency-real" if real else "cli_latency")
    command = "python -m bench.cli_latency " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, command)
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(
        json.dumps({"machine": machine(), "command": command, "rows": rows}, indent=1) + "\n"
    )
    print(text)


if __name__ == "__main__":
    main()
