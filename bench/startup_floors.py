"""Where the start-up time of a Python MIG listing goes, step by step, on a real GPU.

Why this exists: ``bench/cli_latency.py`` shows ``migctl list`` at about 10x ``nvidia-smi
-L``. This splits that time: each row is a fresh interpreter that runs one step sequence
and reports how long every step took inside the process (``perf_counter``), next to the
wall time of the whole process and of ``nvidia-smi -L`` in the same run. It tells which
costs a faster ``migctl list`` can avoid (imports) and which it cannot (loading NVML and
``nvmlInit``). Read-only: it only reads NVML. Usage::

    python -m bench.startup_floors --out bench/results --repeat 20 [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cli_latency import machine

# each probe: (label, python source); the source calls step(name) after each step
PROBE_HEAD = """
import time, json, sys
_t = time.perf_counter(); _steps = {}; _facts = {}
def step(name):
    global _t
    now = time.perf_counter(); _steps[name] = (now - _t) * 1000; _t = now
"""
PROBE_TAIL = "\nprint(json.dumps({'steps': _steps, 'facts': _facts}))\n"
NVML_QUERIES = """
n = pynvml.nvmlDeviceGetCount(); step("device count"); _facts["GPUs counted"] = n
for i in range(n):
    h = pynvml.nvmlDeviceGetHandleByIndex(i)
    pynvml.nvmlDeviceGetName(h); pynvml.nvmlDeviceGetUUID(h)
    pynvml.nvmlDeviceGetMemoryInfo(h)
    try:
        pynvml.nvmlDeviceGetMigMode(h)
    except pynvml.NVMLError:
        pass
step("per GPU: handle, name, uuid, memory, MIG mode")
pynvml.nvmlShutdown(); step("nvmlShutdown")
"""
PROBES: dict[str, str] = {
    "ctypes + CDLL(libnvidia-ml.so.1)": (
        'import ctypes; step("import ctypes")\n'
        'ctypes.CDLL("libnvidia-ml.so.1"); step("load libnvidia-ml.so.1")\n'
    ),
    "pynvml: nvmlInit + queries": (
        'import pynvml; step("import pynvml")\n'
        'pynvml.nvmlInit(); step("nvmlInit (loads the library)")\n' + NVML_QUERIES
    ),
    "pynvml: nvmlInitWithFlags(NO_ATTACH) + queries": (
        'import pynvml; step("import pynvml")\n'
        'pynvml.nvmlInitWithFlags(2); step("nvmlInitWithFlags(NO_ATTACH)")\n' + NVML_QUERIES
    ),
    "rich: import + render a 10-row table": (
        'import rich.console, rich.table; step("import rich.console, rich.table")\n'
        "import io\n"
        "c = rich.console.Console(file=io.StringIO(), width=140)\n"
        't = rich.table.Table(*"ABCDEFGHI")\n'
        "for r in range(10): t.add_row(*[str(r) * 8] * 9)\n"
        'c.print(t); step("render table")\n'
    ),
    "typer, pydantic, stdlib http client": (
        'import typer; step("import typer")\n'
        'import pydantic; step("import pydantic")\n'
        'import http.client, socket; step("import http.client, socket")\n'
    ),
    "migctl modules": (
        'import migctl.model; step("import migctl.model")\n'
        'import migctl.backends.nvml.backend; step("import migctl.backends.nvml.backend")\n'
        'import migctl.cli.main; step("import migctl.cli.main")\n'
        'import migctl.cli.gpus; step("import migctl.cli.gpus")\n'
    ),
}


def run_probe(source: str, repeat: int) -> dict[str, Any]:
    """Median in-process step times and median process wall time over ``repeat`` runs."""
    command = [sys.executable, "-c", PROBE_HEAD + source + PROBE_TAIL]
    first = subprocess.run(command, check=False, capture_output=True, text=True)  # warm cache
    if first.returncode != 0:
        return {"error": (first.stderr.strip().splitlines() or ["failed"])[-1]}
    walls: list[float] = []
    steps: dict[str, list[float]] = {}
    facts: dict[str, object] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=True, text=True)
        walls.append((time.perf_counter() - start) * 1000)
        report = json.loads(done.stdout.splitlines()[-1])
        for name, ms in report["steps"].items():
            steps.setdefault(name, []).append(ms)
        facts.update(report["facts"])
    return {
        "wall_median_ms": statistics.median(walls),
        "steps_median_ms": {name: statistics.median(ms) for name, ms in steps.items()},
        "facts": facts,
    }


def wall(command: list[str], repeat: int) -> float:
    subprocess.run(command, capture_output=True, check=True)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Start-up floors: where a Python MIG listing spends its time",
        "",
        f"Machine: {result['machine']}. Command: `{command}`. Medians of fresh processes.",
        "",
        "| process | wall ms | step | step ms |",
        "|---|---|---|---|",
    ]
    for label, ms in result["references"].items():
        lines.append(f"| `{label}` | {ms:.1f} | | |")
    for label, probe in result["probes"].items():
        if "error" in probe:
            lines.append(f"| {label} | failed | {probe['error']} | |")
            continue
        first = True
        for name, ms in probe["steps_median_ms"].items():
            head = f"{label} | {probe['wall_median_ms']:.1f}" if first else " | "
            lines.append(f"| {head} | {name} | {ms:.1f} |")
            first = False
        for name, fact in probe.get("facts", {}).items():
            lines.append(f"|  |  | {name} | {fact} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--name", default="startup_floors")
    args = parser.parse_args()
    references = {"python -c pass": wall([sys.executable, "-c", "pass"], args.repeat)}
    if shutil.which("nvidia-smi"):
        references["nvidia-smi -L"] = wall(["nvidia-smi", "-L"], args.repeat)
    result: dict[str, Any] = {
        "machine": machine(),
        "references": references,
        "probes": {label: run_probe(src, args.repeat) for label, src in PROBES.items()},
    }
    command = "python -m bench.startup_floors " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(markdown(result, command))
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result, command))


if __name__ == "__main__":
    main()
