"""Read-only, on a real GPU (``pytest --with-gpu -m hardware``): the agent's view of the host
through the Node API matches ``migctl list``, and nothing is written to NVML.

The node is opened read-only, so any NVML write would raise; the fleet's inventory must list
every MIG device ``migctl list`` shows as the first compute instance of its GPU instance, on the
same MIG-enabled GPUs (none on a GPU with MIG off).
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from migctl.fleet.node_host import HeldNode, NodeHost
from migctl.node.open import open_node
from tests.fleet.procs import migctl

pytestmark = [pytest.mark.hardware, pytest.mark.timeout(120)]


def test_the_agents_inventory_of_a_real_host_matches_migctl_list() -> None:
    with open_node(read_only=True) as node:
        inventory = asyncio.run(NodeHost("real", HeldNode(node)).inventory())
        mig_gpus = sorted(
            g.info.index for g in node.inventory().gpus if g.info.mig and g.info.mig.current
        )
    listed = migctl("--local", "--read-only", "-o", "json", "list")
    assert listed.returncode == 0, listed.stderr
    json.loads(listed.stdout)
    uuids = set(re.findall(r'"(MIG-[0-9a-fA-F-]+)"', listed.stdout))
    assert {d.uuid for d in inventory.devices} <= uuids
    assert sorted(g.index for g in inventory.gpus) == mig_gpus
    assert all(not d.worker for d in inventory.devices)
