"""Leases through the migctl daemon: acquire, release, renew, list, and ``migctl run``'s leaser.

Why this exists: on a shared server the daemon is the one authority that hands out MIG devices
(``/v1/leases``), so ``migctl lease``, ``run``, ``env`` and ``docker-args`` must ask it when
this invocation goes through it (see ``cli.route``), with the same options and the same errors
and exit codes as the local lease store gives.

The holder process: on the Unix socket the daemon runs on this very host, so a lease may name
a local PID (``run``: the command's own process; ``env``: the calling shell) and ends when that
process dies, even if migctl is killed. Over TCP the daemon cannot see this host's processes:
``run`` then leases with a TTL (``--ttl``, default :data:`TCP_RUN_TTL_S`) and renews it while
the command runs; ``env`` and ``lease acquire`` hold the lease until it is released or expires.

Only the lease verbs (``cli/leases_cmd.py``, ``cli/run_cmd.py``, ``cli/export_cmd.py``) import
this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migctl.cli.remote_view import lease_from_out
from migctl.errors import InvalidStateError, MigctlError, NotFoundError, NotSupportedError
from migctl.leases import Lease

if TYPE_CHECKING:
    from migctl.server.client import ServiceClient
    from migctl.tenancy.leasing import AcquireOptions
    from migctl.tenancy.selection import DeviceSelection

log = logging.getLogger(__name__)
TCP_RUN_TTL_S = 120.0  # `migctl run` over TCP: the lease ends this long after migctl dies
WAIT_SLACK_S = 30.0  # the HTTP timeout of a waiting acquire: its wait plus this


def lease_body(
    selection: DeviceSelection,
    options: AcquireOptions,
    *,
    job: str | None,
    pid: int | None,
) -> dict[str, Any]:
    """The ``POST /v1/leases`` body for the CLI's selection options (checked like locally)."""
    if options.create:
        raise NotSupportedError(
            "--create is not available through the migctl daemon: only an admin changes the "
            "GPUs there",
            hint="ask an admin to apply a layout with such devices (`migctl apply ...`), or "
            "lease what exists (`migctl list`)",
        )
    request = selection.request()
    body = {
        "uuid": request.uuid,
        "profile": request.profile,
        "memory_mib": request.min_memory_mib,
        "sms": request.min_sm_count,
        "wait_seconds": options.wait_seconds,
        "ttl_seconds": options.ttl_seconds,
        "job": job,
        "pid": pid,
        "priority": options.priority,
    }
    return {key: value for key, value in body.items() if value is not None}


def acquire(client: ServiceClient, body: dict[str, Any]) -> Lease:
    timeout_s = float(body.get("wait_seconds", 0)) + WAIT_SLACK_S
    out = client.request("POST", "/v1/leases", body=body, timeout_s=timeout_s)
    return lease_from_out(out)


def get(client: ServiceClient, target: int | str) -> dict[str, Any]:
    found: dict[str, Any] = client.request("GET", f"/v1/leases/{target}")
    return found


def release(client: ServiceClient, target: str, *, admin: bool) -> Lease:
    """End a lease; someone else's only with ``admin`` (and the daemon's admin role)."""
    if not admin:
        out = get(client, target)
        if not out["mine"]:
            from migctl.leases.ownership import check_may_change

            me = client.request("GET", "/v1/whoami")["name"]
            check_may_change(lease_from_out(out), user=me, admin=False, action="release")
    return lease_from_out(client.request("DELETE", f"/v1/leases/{target}"))


def renew(client: ServiceClient, lease_id: int, ttl_seconds: float | None) -> Lease:
    body = {"ttl_seconds": ttl_seconds}
    return lease_from_out(client.request("POST", f"/v1/leases/{lease_id}/renew", body=body))


def list_leases(
    client: ServiceClient, *, history: bool, user: str | None, device: str | None
) -> list[dict[str, Any]]:
    """The daemon's lease bodies (other users' owner details are null), filtered like locally."""
    found = client.request("GET", "/v1/leases", params={"history": str(history).lower()})
    return [
        out
        for out in found
        if (user is None or out["user"] == user) and (device is None or out["uuid"] == device)
    ]


def active_uuid(client: ServiceClient, lease_id: int) -> str:
    """The device of an active lease (``docker-args --lease``)."""
    lease = lease_from_out(get(client, lease_id))
    if not lease.active:
        raise InvalidStateError(
            f"lease {lease_id} on {lease.uuid} has ended ({lease.end_reason})",
            hint="acquire a new one: migctl lease acquire --profile ...",
        )
    return lease.uuid


def known_device(client: ServiceClient, uuid: str) -> str:
    """``uuid`` if the daemon's machine has that MIG device (``docker-args --device``)."""
    inventory = client.request("GET", "/v1/inventory")
    known = {
        device["uuid"]
        for gpu in inventory["gpus"]
        for gi in gpu["gpu_instances"]
        for device in gi["mig_devices"]
    }
    if uuid not in known:
        raise NotFoundError(
            f"no MIG device {uuid} on the daemon's machine",
            hint="copy a MIG-<uuid> from `migctl list`",
        )
    return uuid


@dataclass
class DaemonLeaser:
    """``migctl run``'s leases from the daemon (a :class:`migctl.tenancy.runner.Leaser`)."""

    client: ServiceClient
    selection: DeviceSelection
    options: AcquireOptions
    job: str | None = None

    @property
    def ttl_seconds(self) -> float | None:
        if self.options.ttl_seconds is None and not self.client.on_socket:
            return TCP_RUN_TTL_S
        return self.options.ttl_seconds

    def check(self) -> None:
        """Refuse bad options before the command is forked."""
        lease_body(self.selection, self.options, job=self.job, pid=None)

    def acquire(self, holder_pid: int) -> Lease:
        pid = holder_pid if self.client.on_socket else None
        body = lease_body(self.selection, self.options, job=self.job, pid=pid)
        if self.ttl_seconds is not None:
            body["ttl_seconds"] = self.ttl_seconds
        return acquire(self.client, body)

    def renew(self, lease: Lease) -> None:
        self.client.request("POST", f"/v1/leases/{lease.lease_id}/renew", body={})

    def release(self, lease: Lease) -> Lease | None:
        """Release quietly: an ended lease is fine; other failures are logged (the daemon
        ends the lease anyway once its holder process is gone or its TTL passes)."""
        try:
            return lease_from_out(self.client.request("DELETE", f"/v1/leases/{lease.lease_id}"))
        except MigctlError as error:
            unreachable = "where" in error.context
            if isinstance(error, NotFoundError | InvalidStateError) and not unreachable:
                return None  # it had already ended
            log.warning("could not release lease %d: %s", lease.lease_id, error.message)
            return None
