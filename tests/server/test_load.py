"""A small load run through the daemon: concurrent clients never share a device, lose no lease.

The benchmark (``bench/service_load.py``, 200 clients x 30 s) measures speed; this runs its
client loop and checks at 20 clients x 3 s, asserting behaviour only.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from bench.service_load import LoadSpec, check, run_clients, verdict
from tests.server.daemon import Daemon


def test_twenty_clients_never_share_a_device_and_lose_no_lease(
    daemon: Daemon, root: httpx.Client
) -> None:
    spec = LoadSpec(
        clients=20, duration_s=3.0, hold_ms=10.0, wait_s=60.0, tag=f"t{uuid.uuid4().hex[:8]}"
    )
    log = asyncio.run(run_clients(daemon.socket_path, spec, range(spec.clients)))
    checks = check(log, daemon.lease_db, spec.tag)
    assert log.errors == []
    assert checks["grants"] > spec.clients  # clients went round more than once
    assert checks["devices_used"] == 7  # every device was shared out over time
    assert checks["double_grants_clients"] == 0 and checks["double_grants_store"] == 0
    assert checks["still_active"] == 0 and checks["not_released"] == 0
    assert checks["unseen_by_clients"] == 0 and checks["missing_in_store"] == 0
    assert verdict(checks)
    assert root.get("/v1/status").json()["leases_active"] == 0


def test_the_checks_catch_a_double_grant_and_a_lost_lease(daemon: Daemon) -> None:
    """The same checks on a doctored log: they are able to fail."""
    spec = LoadSpec(clients=2, duration_s=0.5, hold_ms=5.0, tag=f"t{uuid.uuid4().hex[:8]}")
    log = asyncio.run(run_clients(daemon.socket_path, spec, range(spec.clients)))
    first = log.grants[0]
    log.grants.append({**first, "lease_id": -1})  # the same device held twice at once
    checks = check(log, daemon.lease_db, spec.tag)
    assert checks["double_grants_clients"] >= 1 and checks["missing_in_store"] == 1
    assert not verdict(checks)
