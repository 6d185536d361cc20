"""Compare migctl's view of a real GPU with raw NVML and nvidia-smi, read-only.

Why this exists: the simulator is checked against captures; this checks migctl itself
against a live driver (list, catalog match, profiles, placements, remaining capacity),
and proves read-only mode refuses mutations before any driver call. It never changes MIG
mode, never creates or destroys instances, never resets a GPU. Run it on a GPU machine::

    MIGCTL_READ_ONLY=1 python tools/hardware_check.py --out docs/hardware

It writes ``<out>/<gpu-key>-driver-<version>.md`` and ``.json`` and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pynvml as nv

from migctl.backends.select import open_backend
from migctl.catalog.compare import compare_models
from migctl.errors import ReadOnlyError
from migctl.model import Placement


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'MISMATCH'}] {name}{': ' + detail if detail else ''}", flush=True)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def raw_profiles(handle: Any) -> dict[int, dict[str, Any]]:
    """Raw NVML GI profile info by driver profile id, straight from pynvml."""
    found: dict[int, dict[str, Any]] = {}
    for index in range(0x20):
        try:
            info = nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, index)
        except nv.NVMLError as exc:
            if exc.value == nv.NVML_ERROR_INVALID_ARGUMENT:
                break
            continue
        array = (nv.c_nvmlGpuInstancePlacement_t * 32)()
        count = ctypes.c_uint(32)
        nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, info.id, array, ctypes.byref(count))
        try:
            free = nv.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, info.id)
        except nv.NVMLError:
            free = None
        found[int(info.id)] = {
            "index": index,
            "name": info.name.decode() if isinstance(info.name, bytes) else str(info.name),
            "slices": info.sliceCount,
            "count": info.instanceCount,
            "sm": info.multiprocessorCount,
            "memory_mib": info.memorySizeMB,
            "engines": [
                info.copyEngineCount,
                info.decoderCount,
                info.encoderCount,
                info.jpegCount,
                info.ofaCount,
            ],
            "placements": [(array[i].start, array[i].size) for i in range(count.value)],
            "free": free,
        }
    return found


def smi(*args: str) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else None


def parse_lgipp(text: str) -> dict[int, list[tuple[int, int]]]:
    found: dict[int, list[tuple[int, int]]] = {}
    for match in re.finditer(r"Profile ID\s+(\d+)\s+Placements?\s*:\s*\{([\d,]+)\}:(\d+)", text):
        size = int(match.group(3))
        found[int(match.group(1))] = [(int(s), size) for s in match.group(2).split(",")]
    return found


def check_gpu(report: Report, backend: Any, index: int) -> dict[str, Any]:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    info = backend.gpu(index)
    raw_name = nv.nvmlDeviceGetName(handle)
    raw_name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
    report.check(f"GPU {index} name", info.name == raw_name, info.name)
    raw_uuid = nv.nvmlDeviceGetUUID(handle)
    raw_uuid = raw_uuid.decode() if isinstance(raw_uuid, bytes) else raw_uuid
    report.check(f"GPU {index} UUID", info.uuid == raw_uuid, info.uuid)
    raw_memory = nv.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
    report.check(f"GPU {index} memory", info.memory_total_mib == raw_memory, f"{raw_memory} MiB")
    current, pending = nv.nvmlDeviceGetMigMode(handle)
    report.check(
        f"GPU {index} MIG mode",
        info.mig is not None
        and (info.mig.current, info.mig.pending) == (bool(current), bool(pending)),
        f"current {current}, pending {pending}",
    )
    known = backend.catalog_model(index)
    live = backend.live_model(index)
    report.check(
        f"GPU {index} found in catalog", known is not None, known.key if known else "unknown"
    )
    diffs = compare_models(live, known) if known else ["not in catalog"]
    report.check(f"GPU {index} catalog matches the driver", not diffs, "; ".join(diffs))
    raw = raw_profiles(handle)
    statuses = {s.profile.id: s for s in backend.gi_profiles(index)}
    report.check(f"GPU {index} profile ids", sorted(raw) == sorted(statuses), str(sorted(raw)))
    for profile_id, r in sorted(raw.items()):
        status = statuses.get(profile_id)
        if status is None:
            continue
        p = status.profile
        e = p.engines
        mine = {
            "name": f"MIG {p.name}",
            "slices": p.compute_slices,
            "count": p.max_instances,
            "sm": p.sm_count,
            "memory_mib": p.memory_mib,
            "engines": [e.ce, e.dec, e.enc, e.jpeg, e.ofa],
            "placements": [(x.start, x.size) for x in p.placements],
            "free": status.free,
        }
        theirs = {k: r[k] for k in mine}
        report.check(
            f"GPU {index} profile {profile_id} ({p.name})", mine == theirs, json.dumps(theirs)
        )
    lgipp = smi("mig", "-lgipp", "-i", str(index))
    if lgipp is not None:
        parsed = parse_lgipp(lgipp)
        mine_pl = {
            pid: [(x.start, x.size) for x in s.profile.placements] for pid, s in statuses.items()
        }
        report.check(f"GPU {index} nvidia-smi -lgipp placements", parsed == mine_pl, str(parsed))
    try:
        backend.create_gpu_instance(index, next(iter(statuses)), Placement(0, 1))
        report.check(f"GPU {index} read-only refuses a create", False, "a create was attempted!")
    except ReadOnlyError as refused:
        report.check(f"GPU {index} read-only refuses a create", True, refused.message)
    return {
        "index": index,
        "name": info.name,
        "key": known.key if known else None,
        "raw_profiles": raw,
        "mig_mode": [current, pending],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/hardware"))
    args = parser.parse_args()
    if os.environ.get("MIGCTL_READ_ONLY") != "1":
        sys.exit("refusing to run: set MIGCTL_READ_ONLY=1 (this check must never change a GPU)")
    backend = open_backend(None, read_only=True)
    report = Report()
    gpus = [check_gpu(report, backend, g.index) for g in backend.gpus()]
    smi_l = smi("-L")
    if smi_l is not None:
        names = re.findall(r"GPU \d+: (.+?) \(UUID: (GPU-[0-9a-f-]+)\)", smi_l)
        mine = [(g.name, g.uuid) for g in backend.gpus()]
        report.check("nvidia-smi -L matches migctl list", names == mine, smi_l.strip())
    write(args.out, backend, gpus, report)
    return 0 if report.ok else 1


def write(out: Path, backend: Any, gpus: list[dict[str, Any]], report: Report) -> None:
    out.mkdir(parents=True, exist_ok=True)
    driver = backend.driver_version()
    stem = f"{gpus[0]['key'] or 'unknown'}-driver-{driver}" if gpus else f"no-gpu-{driver}"
    document = {
        "date": dt.date.today().isoformat(),
        "driver": driver,
        "backend": backend.description,
        "ok": report.ok,
        "checks": report.checks,
        "gpus": gpus,
    }
    (out / f"{stem}.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    lines = [
        f"# Hardware check: {stem}",
        "",
        f"Date {document['date']}, {backend.description}. "
        "Command: `MIGCTL_READ_ONLY=1 python tools/hardware_check.py --out docs/hardware` "
        "(read-only: no MIG mode change, no instance created).",
        "",
        f"Result: {'all checks pass' if report.ok else 'MISMATCHES found'} "
        f"({sum(c['ok'] for c in report.checks)}/{len(report.checks)}).",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for c in report.checks:
        detail = c["detail"].replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| {c['check']} | {'ok' if c['ok'] else 'MISMATCH'} | {detail} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.md and .json")


if __name__ == "__main__":
    sys.exit(main())
