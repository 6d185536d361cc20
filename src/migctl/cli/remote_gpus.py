"""``list``, ``status``, ``top``, ``mode`` and ``metrics`` through the migctl daemon.

Why this exists: an unprivileged user on a shared server sees the GPUs only through the daemon
(``GET /v1/inventory``), and only an admin may change MIG mode (``PUT /v1/gpus/N/mig-mode``, a
job). These functions give the verbs in ``cli/gpus.py`` and ``cli/top.py`` the same values the
local path computes, so rendering and JSON shapes stay the same (differences: ``remote_view``).
Only those verb modules import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migctl.backends.base import ModeChange
from migctl.cli.remote_view import Snapshot, json_like_local, read_snapshot
from migctl.cli.session import session
from migctl.errors import InvalidStateError, NotSupportedError, ReadOnlyError
from migctl.inventory import GpuView, select_gpus

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.server.client import ServiceClient


@dataclass(frozen=True, slots=True)
class Machine:
    """The chosen GPUs with their lease holders, as the local verbs see a machine."""

    views: list[GpuView]
    holders: dict[str, Lease]
    description: str
    snapshot: Snapshot

    def json_gpu(self, gpu: dict[str, Any]) -> dict[str, Any]:
        return json_like_local(gpu, self.snapshot.redacted_ids)


def machine(client: ServiceClient, gpu: str | None) -> Machine:
    """The GPUs ``-i`` selects (all by default), read through the daemon."""
    snapshot = read_snapshot(client, session().catalog)
    chosen = select_gpus([view.info for view in snapshot.views], gpu)
    return Machine(snapshot.select(chosen), snapshot.holders, snapshot.backend, snapshot)


def change_mode(
    client: ServiceClient, gpu: str | None, enabled: bool, *, force: bool = False
) -> list[ModeChange]:
    """Enable or disable MIG mode as daemon jobs (admins), one GPU after the other.

    Disabling follows the local rule (``workflow.refuse_disable_with_instances``): the daemon
    refuses it while GPU instances exist (409, exit code 6) unless ``force``.
    """
    if session().read_only:
        raise ReadOnlyError(
            "--read-only refuses MIG mode changes", hint="drop --read-only / MIGCTL_READ_ONLY"
        )
    chosen = machine(client, gpu).views
    reasons: dict[int, str | None] = {}
    for view in chosen:
        index = view.info.index
        job = client.request(
            "PUT", f"/v1/gpus/{index}/mig-mode", body={"enabled": enabled, "force": force}
        )
        done = finished(client, job)
        pending = (done.get("result") or {}).get("pending") or {}
        reasons[index] = pending.get(str(index))
    after = {view.info.index: view.info for view in machine(client, gpu).views}
    changes = []
    for index, reason in reasons.items():
        mig = after[index].mig
        current = mig.current if mig is not None else False
        pending_mode = mig.pending if mig is not None else False
        changes.append(ModeChange(index, enabled, current, pending_mode, reason))
    return changes


def finished(client: ServiceClient, job: dict[str, Any]) -> dict[str, Any]:
    """Wait for a job; raise its error (same class and exit code as locally) if it failed."""
    from migctl.extras import needed

    with needed("the daemon client", extra="server"):
        from migctl.server.client import error_from_body

    done: dict[str, Any] = client.wait_job(int(job["job_id"]))
    if done["status"] == "succeeded":
        return done
    if done.get("error"):
        raise error_from_body(done["error"], 500)
    state = "is still " if done["status"] in {"queued", "running"} else "ended "
    raise InvalidStateError(
        f"daemon job {done['job_id']} ({done['kind']}) {state}{done['status']}: "
        f"{done.get('message') or 'no message'}",
        hint="see it with GET /v1/jobs/{id} (admins); the daemon repairs interrupted applies",
        context={"job_id": done["job_id"], "status": done["status"]},
    )


def metrics_text(client: ServiceClient) -> str:
    """The daemon's ``/metrics`` (Prometheus text), or a clear error if it serves none."""
    text = client.request_text("/metrics")
    if text is None:
        raise NotSupportedError(
            f"the migctl daemon at {client.where} serves no /metrics",
            hint="upgrade the daemon, or run `migctl --local metrics` as root on the GPU host",
            context={"daemon": client.where},
        )
    return text
