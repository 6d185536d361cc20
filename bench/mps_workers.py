"""The GPU programs of the MPS interference benchmark: a latency victim and two aggressors.

Why this exists: ``bench/mps_interference.py`` runs each client of a case as its own
process (an MPS client is a process), launched through a pluggable launcher. Each process
runs one role, waits at a barrier (a ``go`` file) so that the clients of a case overlap,
measures for a fixed time and writes its result as JSON:

* ``victim``: a small MLP inference step (batch 32, 4 x 1024-wide bf16 layers), timed one
  step at a time (p50/p99 ms);
* ``gemm``: bf16 8192^3 matrix products, TFLOP/s;
* ``copy``: 1 GiB device-to-device copies, GB/s (bytes read + written);

and reports the SMs CUDA shows it (``multi_processor_count``, which MPS lowers to the
client's share) and, when asked, whether an allocation past its pinned limit is refused.
Needs PyTorch with CUDA; imported lazily (the rest of the benchmark does not need it).
Run by ``mps_interference.py --role ROLE ...``; never changes a GPU setting.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GEMM_N = 8192
COPY_BYTES = 1 << 30
MLP_WIDTH, MLP_BATCH, MLP_LAYERS = 1024, 32, 4
WARMUP_S = 0.5  # the victim starts timing after the aggressor has ramped up
GIB = 1 << 30


def _torch() -> Any:
    return importlib.import_module("torch")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} after {timeout_s:g} s")
        time.sleep(0.005)


Ready = Callable[[], None]


def _victim(torch: Any, duration_s: float, ready: Ready) -> dict[str, Any]:
    layers: list[Any] = []
    for _ in range(MLP_LAYERS):
        layers += [torch.nn.Linear(MLP_WIDTH, MLP_WIDTH), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers).cuda().to(torch.bfloat16).eval()
    x = torch.randn(MLP_BATCH, MLP_WIDTH, device="cuda", dtype=torch.bfloat16)

    def step() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000

    for _ in range(50):
        step()
    ready()
    time.sleep(WARMUP_S)
    times_ms: list[float] = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        times_ms.append(step())
    return {
        "steps": len(times_ms),
        "p50_ms": statistics.median(times_ms),
        "p99_ms": _percentile(times_ms, 0.99),
        "mean_ms": statistics.fmean(times_ms),
    }


def _loop(torch: Any, duration_s: float, work: Callable[[], object]) -> tuple[int, float]:
    """Run ``work`` in groups of 4 (then synchronize) for ``duration_s``: (count, seconds)."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration_s:
        for _ in range(4):
            work()
        torch.cuda.synchronize()
        count += 4
    return count, time.perf_counter() - start


def _gemm(torch: Any, duration_s: float, ready: Ready) -> dict[str, Any]:
    a = torch.randn(GEMM_N, GEMM_N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(GEMM_N, GEMM_N, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(GEMM_N, GEMM_N, device="cuda", dtype=torch.bfloat16)
    _loop(torch, 0.2, lambda: torch.matmul(a, b, out=c))
    ready()
    count, seconds = _loop(torch, duration_s, lambda: torch.matmul(a, b, out=c))
    return {
        "iterations": count,
        "seconds": seconds,
        "tflops": 2 * GEMM_N**3 * count / seconds / 1e12,
    }


def _copy(torch: Any, duration_s: float, ready: Ready) -> dict[str, Any]:
    src = torch.empty(COPY_BYTES, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    _loop(torch, 0.2, lambda: dst.copy_(src))
    ready()
    count, seconds = _loop(torch, duration_s, lambda: dst.copy_(src))
    return {"iterations": count, "seconds": seconds, "gbps": 2 * COPY_BYTES * count / seconds / 1e9}


def _probe_memory(torch: Any, refuse_gib: float, fit_gib: float) -> dict[str, Any]:
    """Try an allocation past the pinned limit (must fail) and one within it (must not)."""
    result: dict[str, Any] = {"refuse_gib": refuse_gib, "fit_gib": fit_gib}
    for key, gib in (("refused", refuse_gib), ("fit", fit_gib)):
        try:
            block = torch.empty(int(gib * GIB), device="cuda", dtype=torch.uint8)
            del block
            torch.cuda.empty_cache()
            result[key] = key == "fit"  # refused: False (it was allowed); fit: True
            result[key + "_error"] = ""
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
            result[key] = key == "refused"
            result[key + "_error"] = str(exc).splitlines()[0][:200]
    return result


ROLES: dict[str, Callable[[Any, float, Ready], dict[str, Any]]] = {
    "victim": _victim,
    "gemm": _gemm,
    "copy": _copy,
}


def run_role(
    role: str, duration_s: float, case_dir: Path, name: str, probe: tuple[float, float] | None
) -> None:
    """One client: set up, report ready, wait for go, measure, probe, write ``<name>.json``."""
    torch = _torch()
    torch.cuda.init()
    properties = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    facts: dict[str, Any] = {
        "name": name,
        "role": role,
        "pid": os.getpid(),
        "sms": properties.multi_processor_count,
        "device": properties.name,
        "mem_free_gib": free / GIB,
        "mem_total_gib": total / GIB,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("CUDA_MPS", "CUDA_VISIBLE"))},
    }

    def ready() -> None:
        (case_dir / f"{name}.ready").write_text(json.dumps({"pid": os.getpid()}))
        _wait_for(case_dir / "go", 300)

    facts["result"] = ROLES[role](torch, duration_s, ready)
    if probe is not None:
        facts["memory_probe"] = _probe_memory(torch, *probe)
    (case_dir / f"{name}.json").write_text(json.dumps(facts, indent=1))
