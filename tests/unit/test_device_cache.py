"""The MIG devices a daemon's node leases from: kept a few seconds, dropped by its own changes.

A daemon reads the machine once for many waiting clients (``migctl.node.device_cache``); a
change the node makes must be seen by the very next lease, and a node kept 0 s (every
``open_node``) reads the machine at each call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.errors import InsufficientResourcesError
from migctl.node.local import LocalNode
from migctl.node.open import open_node
from migctl.schemas.layouts import SplitTarget
from migctl.schemas.leases import LeaseRequest


@pytest.fixture
def node(sim_dir: Path) -> Iterator[LocalNode]:
    with open_node(sim="h100-single", sim_dir=sim_dir) as opened:
        opened.set_mode([0], enabled=True)
        opened.apply(SplitTarget(n=2), gpus=[0])
        yield opened


def test_a_kept_list_is_dropped_by_the_nodes_own_change(node: LocalNode) -> None:
    node.device_cache.max_age_s = 3600.0  # only a change of its own may refresh it
    first = node.acquire(LeaseRequest(profile="3g.40gb"))
    node.release(first.lease_id)
    node.apply(SplitTarget(n=7), gpus=[0])  # the 3g.40gb devices are gone
    with pytest.raises(InsufficientResourcesError):
        node.acquire(LeaseRequest(profile="3g.40gb"))
    assert node.acquire(LeaseRequest(profile="1g.10gb")).profile == "1g.10gb"


def test_a_kept_list_serves_without_reading_the_machine(
    node: LocalNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.device_cache.max_age_s = 3600.0
    node.release(node.acquire(LeaseRequest(profile="3g.40gb")).lease_id)
    reads: list[int] = []
    real = node.backend.mig_devices

    def counted(index: int) -> object:
        reads.append(index)
        return real(index)

    monkeypatch.setattr(node.backend, "mig_devices", counted)
    for _ in range(3):
        node.release(node.acquire(LeaseRequest(profile="3g.40gb")).lease_id)
    assert reads == []
    node.device_cache.invalidate()
    node.release(node.acquire(LeaseRequest(profile="3g.40gb")).lease_id)
    assert reads == [0]


def test_a_node_of_open_node_reads_the_machine_each_time(node: LocalNode) -> None:
    assert node.device_cache.max_age_s == 0
    node.release(node.acquire(LeaseRequest(profile="3g.40gb")).lease_id)
    backend = node.backend  # a change behind the node's back, as nvidia-smi would make it
    for device in backend.mig_devices(0):
        backend.destroy_compute_instance(0, device.gi_id, device.ci_id)
        backend.destroy_gpu_instance(0, device.gi_id)
    with pytest.raises(InsufficientResourcesError):
        node.acquire(LeaseRequest(profile="3g.40gb"))
