"""The fleet on a real GPU host, read-only for MIG: one soft-share worker per GPU runs a task.

Why this exists: the fleet issue asks for a read-only run on the real GPU machine with one
worker per real GPU. With MIG off there, the agent's workers are soft-share workers
(``migctl fleet agent --soft-share 100``: ``migctl run --share 100% -- dask worker``). This
client waits for them, runs one PyTorch task per worker with ``resources=soft(100)``, and
prints one JSON line: the workers and their resources, and what each task saw (its
``CUDA_VISIBLE_DEVICES``, MPS variables, SM count). Used by ``tools/real_gpu_fleet.sh``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def seen_by_task() -> dict[str, Any]:
    import importlib

    torch = importlib.import_module("torch")
    keys = [k for k in os.environ if k.startswith(("CUDA_VISIBLE", "CUDA_MPS", "MIGCTL_LEASE"))]
    props = torch.cuda.get_device_properties(0)
    block = torch.ones(1024, 1024, device="cuda")
    return {
        "env": {k: os.environ[k] for k in sorted(keys)},
        "sm_count_seen": props.multi_processor_count,
        "sum": float(block.sum().item()),
    }


def main(scheduler: str, gpus: int) -> int:
    from distributed import Client

    from migctl.dask import soft

    with Client(scheduler, timeout=60) as client:  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 120
        while len(client.scheduler_info()["workers"]) < gpus:
            if time.monotonic() > deadline:
                sys.stdout.write(json.dumps({"error": "workers did not come"}) + "\n")
                return 1
            time.sleep(0.5)
        workers = {
            address: info.get("resources", {})
            for address, info in client.scheduler_info()["workers"].items()
        }
        futures = [
            client.submit(seen_by_task, resources=soft(100), pure=False) for _ in range(gpus)
        ]
        results = client.gather(futures)
    sys.stdout.write(json.dumps({"workers": workers, "tasks": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
