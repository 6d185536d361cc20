"""What a CUDA client sees inside a soft device: run it under ``migctl run --share N% --``.

Why this exists: the soft-partitions issue asks that ``migctl run --share 25% -- python ...``
run a real PyTorch client in a soft device on the real GPU. This probe prints, as one JSON
line, the MPS variables the lease set, the SM count and memory CUDA reports, whether an
allocation above the pinned limit is refused, and a short bf16 GEMM rate. It needs PyTorch
(present on the GPU machine) and changes no GPU setting.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time


def main() -> int:
    torch = importlib.import_module("torch")  # on the GPU machine only (untyped here)

    keys = [k for k in os.environ if k.startswith(("CUDA_", "NVIDIA_", "MIGCTL_LEASE"))]
    seen: dict[str, object] = {k: os.environ[k] for k in sorted(keys)}
    props = torch.cuda.get_device_properties(0)
    seen["device_name"] = props.name
    seen["sm_count_seen"] = props.multi_processor_count
    free, total = torch.cuda.mem_get_info()
    seen["mem_free_mib"], seen["mem_total_mib"] = free // 2**20, total // 2**20
    limit = os.environ.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "")
    if limit.endswith("M") and "=" in limit:
        over = int(limit.split("=")[1][:-1]) + 2048  # 2 GiB past the pinned limit
        try:
            block = torch.empty(over * 2**20, dtype=torch.uint8, device="cuda")
            seen["over_limit_allocation"] = "allowed"
            del block
        except RuntimeError as error:
            seen["over_limit_allocation"] = "refused: " + str(error).splitlines()[0][:120]
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    start, rounds = time.perf_counter(), 20
    for _ in range(rounds):
        a @ b
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    seen["gemm_tflops"] = round(2 * 8192**3 * rounds / seconds / 1e12, 1)
    sys.stdout.write(json.dumps(seen) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
