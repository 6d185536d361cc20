"""Helpers for Dask users on a migctl fleet: ask for a MIG size in one call.

Why this exists: a task that needs a MIG device says so with Dask's ``resources=``; the
names must match what fleet workers offer (``migctl.fleet.resources``), and sizes must be
read the way the rest of migctl reads them::

    from migctl.dask import mig, gpu
    client.submit(train, resources=mig("3g.40gb"))   # {"mig-3g.40gb": 1}
    client.submit(infer, resources=gpu(mem="12GiB"))  # {"gpu-mem-gib": 12.0, "mig-device": 1}
    client.submit(serve, resources=soft(share=25))     # {"soft-share": 25.0, "soft-device": 1}

``MigCluster`` brings a whole simulated (or real) fleet up in one line (``migctl.fleet.cluster``:
a scheduler with the fleet controller, N hosts each with its own machine, files and agent,
workers on their MIG devices), and ``close()`` leaves no process behind::

    with MigCluster(4) as cluster, cluster.client() as client:
        client.submit(train, resources=mig("3g.40gb")).result()

``worker_resources`` / ``worker_memory_limit`` give the worker side for a profile (what
``dask worker --resources`` and ``--memory-limit`` get): the instance's memory, never the
whole GPU's. Sizes are checked against the largest MIG device any known GPU offers, so a
request no device could ever serve is refused at once instead of waiting forever.
The helpers are pure (no Dask import, no hardware); ``MigCluster`` and ``SimHost`` are
imported from ``migctl.fleet`` on first use (they need the ``fleet`` extra). For users.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from migctl.catalog import load_catalog
from migctl.errors import InvalidInputError
from migctl.fleet.resources import (
    GPU_MEM_GIB,
    GPU_SM,
    MIG_DEVICE,
    SOFT_DEVICE,
    SOFT_SHARE,
    profile_resource,
    worker_memory_limit,
    worker_resources,
)
from migctl.model import normalize_profile_name
from migctl.sizes import parse_memory_mib

if TYPE_CHECKING:
    from migctl.fleet.cluster import MigCluster
    from migctl.fleet.simhosts import SimHost

__all__ = [
    "MigCluster",
    "SimHost",
    "gpu",
    "mig",
    "soft",
    "worker_memory_limit",
    "worker_resources",
]
_LAZY = {"MigCluster": "migctl.fleet.cluster", "SimHost": "migctl.fleet.simhosts"}


def __getattr__(name: str) -> Any:
    """``MigCluster`` and ``SimHost``, imported on first use (they need Dask)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'migctl.dask' has no attribute {name!r}")


@lru_cache(maxsize=1)
def _known_profiles() -> dict[str, tuple[int, int]]:
    """Every GI profile name in the catalog -> (largest memory MiB, largest SM count)."""
    known: dict[str, tuple[int, int]] = {}
    for model in load_catalog().models:
        for profile in model.gi_profiles:
            memory, sms = known.get(profile.name, (0, 0))
            known[profile.name] = (
                max(memory, profile.memory_mib or 0),
                max(sms, profile.sm_count or 0),
            )
    return known


def mig(profile: str) -> dict[str, float]:
    """``resources=`` for one MIG device of exactly ``profile`` (e.g. ``"1g.10gb"``)."""
    name = normalize_profile_name(profile)
    known = _known_profiles()
    if name not in known:
        raise InvalidInputError(
            f"{profile!r} is not a MIG profile of any known GPU",
            hint="e.g. 1g.10gb, 3g.40gb or 1g.10gb+me (see `migctl catalog MODEL`)",
            context={"profile": profile},
        )
    return {profile_resource(name): 1.0}


def gpu(mem: str | None = None, sm: int | None = None) -> dict[str, float]:
    """``resources=`` for any MIG device with at least ``mem`` (``"12GiB"``) and ``sm`` SMs."""
    if mem is None and sm is None:
        raise InvalidInputError(
            "gpu() needs mem= or sm=", hint='e.g. gpu(mem="12GiB") or gpu(sm=30)'
        )
    known = _known_profiles().values()
    resources = {MIG_DEVICE: 1.0}
    if mem is not None:
        mib = parse_memory_mib(mem)
        most = max(m for m, _ in known)
        if mib <= 0 or mib > most:
            raise InvalidInputError(
                f"no MIG device of any known GPU has {mem} ({mib} MiB)",
                hint=f"the largest has {most} MiB; ask for less, or run on whole GPUs",
                context={"mem": mem},
            )
        resources[GPU_MEM_GIB] = mib / 1024
    if sm is not None:
        most_sms = max(s for _, s in known)
        if isinstance(sm, bool) or not isinstance(sm, int) or not 0 < sm <= most_sms:
            raise InvalidInputError(
                f"sm must be a whole number from 1 to {most_sms}, not {sm!r}",
                hint="the SM count a MIG device must have at least, e.g. sm=30",
                context={"sm": str(sm)},
            )
        resources[GPU_SM] = float(sm)
    return resources


def soft(share: int, mem: str | None = None) -> dict[str, float]:
    """``resources=`` for a soft device (an MPS share of a GPU without MIG) with at least
    ``share`` percent of its SMs and, if given, ``mem`` (``"8GiB"``) of pinned memory.
    Soft devices have no fault or memory-bandwidth isolation (docs/soft-partitions.md)."""
    if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
        raise InvalidInputError(
            f"share must be a whole percent from 1 to 100, not {share!r}",
            hint="the SM share a soft device must have at least, e.g. soft(share=25)",
            context={"share": str(share)},
        )
    resources = {SOFT_SHARE: float(share), SOFT_DEVICE: 1.0}
    if mem is not None:
        mib = parse_memory_mib(mem)
        if mib <= 0:
            raise InvalidInputError(
                f"soft(mem={mem!r}) must be a positive size", hint='e.g. soft(25, mem="8GiB")'
            )
        resources[GPU_MEM_GIB] = mib / 1024
    return resources
