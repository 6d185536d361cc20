"""Alibaba GPU cluster trace v2023 ("openb"): pods, nodes, and what each pod asks of MIG.

Why this exists: the openb benchmarks (fill-until-full as FGD measured it, and a replay by
creation/deletion time) read the same pods and must map them to GPU requests the same
way. Mapping rule (``request_for``):

* ``num_gpu == 0``: CPU only;
* ``num_gpu == 1`` and ``gpu_milli < 1000``: a share; with MIG, the smallest profile whose
  compute share (compute slices / 7) covers ``gpu_milli / 1000``, chosen by
  ``migctl.planner.smallest_profile`` (e.g. 470 milli -> 4g, since 3/7 = 0.43 < 0.47);
* ``gpu_milli == 1000``: ``num_gpu`` whole GPUs on one node (with MIG: one 7g instance
  on each, which is the whole GPU).

The data directory is a path the user gives. Imported by ``bench.openb*`` and tests.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from migctl.errors import NotFoundError
from migctl.model import GpuModel
from migctl.planner import smallest_profile

POD_FILE = "openb_pod_list_default.csv"
NODE_FILE = "openb_node_list_gpu_node.csv"


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int  # per GPU
    creation_s: int
    deletion_s: int

    @property
    def requested_milli(self) -> int:
        """GPU demand in thousandths of a GPU (what FGD's ratios count)."""
        return self.num_gpu * self.gpu_milli


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    gpu_model: str  # the trace's GPU model (replaced by one MIG model in the benchmarks)


@dataclass(frozen=True, slots=True)
class Request:
    """What a pod needs of GPUs: nothing, one share, or ``gpus`` whole GPUs."""

    kind: str  # "cpu", "share" or "whole"
    share: Hashable = None  # the GpuRules' share: a profile name (MIG) or milli (fractional)
    gpus: int = 0


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise NotFoundError(
            f"{path} does not exist", hint="give --data the alibaba-openb directory"
        )
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_pods(directory: Path) -> list[Pod]:
    return [
        Pod(
            row["name"],
            int(row["cpu_milli"]),
            int(row["memory_mib"]),
            int(row["num_gpu"]),
            int(row["gpu_milli"]),
            int(row["creation_time"]),
            int(row["deletion_time"]),
        )
        for row in _rows(directory / POD_FILE)
    ]


def load_nodes(directory: Path) -> list[NodeSpec]:
    return [
        NodeSpec(
            row["sn"], int(row["cpu_milli"]), int(row["memory_mib"]), int(row["gpu"]), row["model"]
        )
        for row in _rows(directory / NODE_FILE)
    ]


def mig_profile(model: GpuModel, gpu_milli: int) -> str:
    """The smallest MIG profile of ``model`` whose compute share covers ``gpu_milli``."""
    return smallest_profile(model, share=min(gpu_milli, 1000) / 1000).profile.name


def request_for(pod: Pod, model: GpuModel | None) -> Request:
    """The pod's request with MIG on ``model``, or fractional sharing when ``model`` is None."""
    if pod.num_gpu == 0 or pod.gpu_milli == 0:
        return Request("cpu")
    if pod.gpu_milli >= 1000:
        return Request("whole", gpus=pod.num_gpu)
    if pod.num_gpu > 1:  # not in openb; k shares would need k GPUs of one node
        raise NotImplementedError(f"{pod.name}: {pod.num_gpu} GPUs of {pod.gpu_milli} milli")
    share: Hashable = mig_profile(model, pod.gpu_milli) if model is not None else pod.gpu_milli
    return Request("share", share, 1)


def profile_weights(pods: Sequence[Pod], model: GpuModel) -> dict[str, float]:
    """Popularity of each MIG profile among GPU pods (whole-GPU pods count as 7g)."""
    counts: Counter[str] = Counter()
    for pod in pods:
        if pod.requested_milli:
            counts[mig_profile(model, pod.gpu_milli)] += 1
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in sorted(counts.items())}
