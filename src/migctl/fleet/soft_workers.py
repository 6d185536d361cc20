"""Soft-share workers: Dask workers on MPS shares of a host's GPUs without MIG.

Why this exists: the fleet reshapes MIG; a GPU without MIG (MIG-incapable like the L40S, or MIG
off) can still be split, into soft devices (CUDA MPS shares). A host given ``soft_shares``
(e.g. ``(50, 25, 25)``) keeps one worker per share on each such GPU, started as ``migctl run
--share P% --parent GPU-<uuid> --memory M -- dask worker ...`` (``fleet.workers``); it offers
``soft-share: P``, ``gpu-mem-gib`` and ``soft-device: 1``, its memory limit the share's pinned
limit (the share's fraction of the GPU's memory, never the whole GPU). The controller never
reshapes soft shares: the agent keeps them as configured (a worker that dies is started again
after a back-off). The inventory lists every soft device of the host with ``isolation soft``.

Pure helpers over a node's ``Inventory``; imported by ``fleet.node_host``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from migctl.errors import InvalidInputError
from migctl.fleet.host import SoftDevice
from migctl.fleet.workers import SoftWorkerShare

if TYPE_CHECKING:
    from migctl.reports import Inventory
    from migctl.schemas.leases import LeaseRequest

MAX_SHARES = 8  # per GPU: a host's workers stay within the fleet's per-host device bound
SOFT_TAG = ":soft-"


def check_soft_shares(shares: Sequence[int]) -> tuple[int, ...]:
    """The shares as given, or a clear refusal: whole percents 1-100, at most 8, sum <= 100."""
    hint = "give whole percents of one GPU that sum to 100 at most, e.g. 50,25,25"
    if len(shares) > MAX_SHARES:
        raise InvalidInputError(
            f"at most {MAX_SHARES} soft shares per GPU, not {len(shares)}", hint=hint
        )
    for share in shares:
        if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
            raise InvalidInputError(
                f"soft share {share!r} is not a whole percent from 1 to 100", hint=hint
            )
    if sum(shares) > 100:
        raise InvalidInputError(
            f"soft shares {','.join(map(str, shares))} sum to {sum(shares)}% of one GPU",
            hint=hint,
        )
    return tuple(shares)


def soft_worker_name(host: str, parent_uuid: str, index: int) -> str:
    """``HOST:GPU-<uuid>:soft-<n>``: the n-th share's worker (and its lease's job)."""
    return f"{host}:{parent_uuid}{SOFT_TAG}{index}"


def is_soft_worker_name(host: str, job: str | None) -> bool:
    return job is not None and job.startswith(f"{host}:") and SOFT_TAG in job


def wanted_shares(host: str, found: Inventory, shares: Sequence[int]) -> dict[str, SoftWorkerShare]:
    """The soft workers the host should run: one per share on each GPU without MIG, by name."""
    wanted: dict[str, SoftWorkerShare] = {}
    for view in found.gpus:
        info = view.info
        if info.mig is not None and info.mig.current:
            continue  # MIG devices are the controller's
        for index, percent in enumerate(shares):
            memory = max(1, info.memory_total_mib * percent // 100)
            share = SoftWorkerShare(info.index, info.uuid, percent, memory)
            wanted[soft_worker_name(host, info.uuid, index)] = share
    return wanted


def soft_devices(found: Inventory, workers: Mapping[str, str]) -> tuple[SoftDevice, ...]:
    """Every soft device of the host; ``workers``: lease job -> our worker's name."""
    devices = []
    for soft in sorted(found.soft, key=lambda s: (s.gpu_index, s.uuid)):
        job = soft.lease.job if soft.lease is not None else None
        devices.append(
            SoftDevice(
                uuid=soft.uuid,
                gpu=soft.gpu_index,
                parent_uuid=soft.parent_uuid,
                percent=soft.percent,
                memory_limit_mib=soft.memory_limit_mib,
                worker=workers.get(job) if job is not None else None,
                held=soft.lease is not None,
            )
        )
    return tuple(devices)


def soft_lease_request(share: SoftWorkerShare, name: str, pid: int) -> LeaseRequest:
    """The lease an in-process soft worker holds (``migctl run --share`` asks the same)."""
    from migctl.schemas.leases import LeaseRequest

    return LeaseRequest(
        share=share.percent,
        parent=share.parent_uuid,
        memory_mib=share.memory_mib,
        job=name,
        pid=pid,
    )
