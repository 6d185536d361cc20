"""A daemon keeps the CDI spec in step with its applies, as ``migctl apply`` does locally.

Containers started through CDI name MIG devices from the spec; after a repartition through the
daemon a stale spec would point at devices that are gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.server.conftest import apply_and_wait, split
from tests.server.daemon import running


def spec_uuids(spec: Path) -> set[str]:
    names = {device["name"] for device in yaml.safe_load(spec.read_text())["devices"]}
    return {name for name in names if name.startswith("MIG-")}


def inventory_uuids(inventory: dict[str, Any]) -> set[str]:
    return {
        str(device["uuid"])
        for gpu in inventory["gpus"]
        for gi in gpu["gpu_instances"]
        for device in gi["mig_devices"]
    }


def test_each_apply_through_the_daemon_rewrites_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "cdi" / "migctl.yaml"
    with running(extra_env={"MIGCTL_CDI_PATH": str(spec)}) as daemon, daemon.client() as root:
        assert apply_and_wait(root, split(3))["status"] == "succeeded"
        three = inventory_uuids(root.get("/v1/inventory").json())
        assert len(three) == 3 and spec_uuids(spec) == three
        assert apply_and_wait(root, split(2))["status"] == "succeeded"
        two = inventory_uuids(root.get("/v1/inventory").json())
        assert len(two) == 2 and spec_uuids(spec) == two and not two & three
        noop = apply_and_wait(root, split(2))
        assert noop["status"] == "succeeded" and spec_uuids(spec) == two
