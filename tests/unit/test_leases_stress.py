"""Many processes acquire and release at once: never two holders of one device, nothing leaked.

Each worker, while it holds a lease, owns a marker file per device created with ``O_EXCL``: a
second holder of the same device at the same time would fail to create it (a timing-free check).
Workers also log monotonic hold intervals, and the store's own history is checked for overlap.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

from migctl.leases import Backoff, DeviceCandidate, DeviceRequest, EndReason, LeaseOwner, LeaseStore

WORKERS = 8
CYCLES = 30
DEVICES = [DeviceCandidate(f"MIG-{n}", n // 2, n, 0, "1g.10gb", 9_984, 16) for n in range(3)]
FAST = Backoff(initial_s=0.002, max_s=0.02)


def _worker(db_path: str, work_dir: str, index: int) -> None:
    store = LeaseStore(db_path, backoff=FAST)
    owner = LeaseOwner(user=f"user{index}", uid=1000 + index, host=os.uname().nodename,
                       pid=os.getpid())  # fmt: skip
    log, violations = [], 0
    for _ in range(CYCLES):
        lease = store.acquire(DeviceRequest(profile="1g.10gb"), owner, DEVICES, wait_seconds=60)
        marker = os.path.join(work_dir, lease.uuid)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            violations += 1
            fd = -1
        start_ns = time.monotonic_ns()
        time.sleep(random.uniform(0, 0.002))
        end_ns = time.monotonic_ns()
        if fd >= 0:
            os.close(fd)
            os.unlink(marker)
        store.release(lease.lease_id, user=owner.user)
        log.append([lease.uuid, lease.lease_id, start_ns, end_ns])
    result = {"log": log, "violations": violations}
    Path(work_dir, f"worker-{index}.json").write_text(json.dumps(result))


def _overlaps(intervals: list[tuple[float, float]]) -> int:
    ordered = sorted(intervals)
    return sum(1 for a, b in itertools.pairwise(ordered) if b[0] < a[1])


def test_concurrent_workers_never_share_a_device(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "leases.db")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_worker, args=(str(store.path), str(tmp_path), index))
        for index in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * WORKERS

    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    violations = 0
    for index in range(WORKERS):
        result = json.loads((tmp_path / f"worker-{index}.json").read_text())
        violations += result["violations"]
        for uuid, _lease_id, start_ns, end_ns in result["log"]:
            held[uuid].append((start_ns, end_ns))
    assert violations == 0
    assert sum(len(v) for v in held.values()) == WORKERS * CYCLES
    assert all(_overlaps(intervals) == 0 for intervals in held.values())

    assert store.list_leases() == []  # nothing leaked
    history = store.list_leases(active_only=False)
    assert len(history) == WORKERS * CYCLES
    assert {x.end_reason for x in history} == {EndReason.RELEASED}
    by_device: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for lease in history:
        assert lease.ended_at is not None
        by_device[lease.uuid].append((lease.created_at, lease.ended_at))
    assert all(_overlaps(intervals) == 0 for intervals in by_device.values())


def test_threads_sharing_one_store_never_share_a_device(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "leases.db", backoff=FAST)
    holders: dict[str, str] = {}
    clashes: list[str] = []
    guard = threading.Lock()

    def run(index: int) -> None:
        owner = LeaseOwner(user=f"t{index}", uid=index, host=os.uname().nodename)
        for _ in range(CYCLES):
            lease = store.acquire(DeviceRequest(), owner, DEVICES, wait_seconds=60)
            with guard:
                if lease.uuid in holders:
                    clashes.append(lease.uuid)
                holders[lease.uuid] = owner.user
            time.sleep(random.uniform(0, 0.001))
            with guard:
                del holders[lease.uuid]
            store.release(lease.lease_id, user=owner.user)
        store.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert clashes == [] and holders == {}
    assert store.list_leases() == []
    assert len(store.list_leases(active_only=False)) == 6 * CYCLES
