"""``migctl lease acquire|release|renew|list``: lease MIG devices by hand.

Why this exists: a MIG device shared by several people must be handed out by one authority,
never by word of mouth. These verbs lease by profile (``--profile 1g.10gb``), by need
(``--memory 12GiB``, ``--sms 20``) or by device (``--device MIG-...``), optionally creating a
device in free slices (``--create``), and show who holds what. The selection options defined
here are shared with ``migctl run`` and ``migctl env`` (``cli/run_cmd.py``). Through the migctl
daemon the same verbs ask ``/v1/leases`` (``cli/remote_leases.py``); ``--lease-db`` then does
not apply (the daemon's lease database is the one).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli.output import emit, note, outside, print_rows, table, value
from migctl.cli.session import session
from migctl.errors import PermissionDeniedError
from migctl.untrusted import escape

if TYPE_CHECKING:
    from rich.console import RenderableType

    from migctl.leases import Lease, LeaseStore
    from migctl.tenancy.leasing import AcquireOptions
    from migctl.tenancy.selection import DeviceSelection

ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", help="MIG profile, e.g. 1g.10gb or 1c.3g.40gb.")
]
MemoryOption = Annotated[
    str | None,
    typer.Option("--memory", "-m", help="At least this much GPU memory: 12GiB, 500MiB, 10GB."),
]
SmsOption = Annotated[
    int | None, typer.Option("--sms", help="At least this many streaming multiprocessors.")
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", "-d", help="This MIG device (MIG-<uuid>).")
]
CreateOption = Annotated[
    bool,
    typer.Option("--create", help="If nothing free matches, create a MIG instance in free slices."),
]
WaitOption = Annotated[
    str,
    typer.Option("--wait", "-w", help="Wait up to this long for a device (30, 90s, 5m)."),
]
TtlOption = Annotated[
    str | None,
    typer.Option("--ttl", help="The lease ends this long after the last renewal (5m, 2h)."),
]
JobOption = Annotated[str | None, typer.Option("--job", "-j", help="A job name to show.")]
PriorityOption = Annotated[
    int | None,
    typer.Option(
        "--priority",
        min=0,
        max=1000,
        help="Through the migctl daemon: larger is served first while waiting (users 0-10).",
    ),
]
ShareOption = Annotated[
    str | None,
    typer.Option(
        "--share",
        help="A soft device: this share of a GPU's or MIG device's SMs through CUDA MPS "
        "(25% or 25); --memory is then its pinned memory limit. No fault or bandwidth "
        "isolation: see docs/soft-partitions.md.",
    ),
]
ParentOption = Annotated[
    str | None,
    typer.Option(
        "--parent", help="With --share: the GPU (index, GPU-<uuid>) or MIG-<uuid> to share."
    ),
]
OversubscribeOption = Annotated[
    bool,
    typer.Option("--oversubscribe", help="With --share: let the parent's SM shares pass 100%."),
]
AllowOtherUserOption = Annotated[
    bool,
    typer.Option(
        "--allow-other-user",
        help="With --share: share a parent another Unix user shares (MPS: they take turns).",
    ),
]
LeaseDbOption = Annotated[
    Path | None,
    typer.Option("--lease-db", envvar="MIGCTL_LEASE_DB", help="The lease database file."),
]


def selection_from(
    profile: str | None,
    memory: str | None,
    sms: int | None,
    device: str | None,
    share: str | None = None,
    parent: str | None = None,
    oversubscribe: bool = False,
    allow_other_user: bool = False,
) -> DeviceSelection:
    from migctl.mps.shares import parse_share
    from migctl.sizes import parse_memory_mib
    from migctl.tenancy.selection import DeviceSelection

    memory_mib = parse_memory_mib(memory) if memory is not None else None
    percent = parse_share(share) if share is not None else None
    selection = DeviceSelection(
        profile, memory_mib, sms, device, percent, parent, oversubscribe, allow_other_user
    )
    selection.check_soft()
    return selection


def local_options(options: AcquireOptions) -> AcquireOptions:
    """``options`` for leasing here: with how this machine runs MPS (soft devices)."""
    import dataclasses

    from migctl.node.soft import mps_host

    current = session()
    host = mps_host(current.machine_settings(), current.backend.files_dir)
    return dataclasses.replace(options, mps=host)


def acquire_options(
    ttl: str | None, wait: str, create: bool, priority: int | None = None
) -> AcquireOptions:
    from migctl.sizes import parse_duration_s
    from migctl.tenancy.leasing import AcquireOptions

    ttl_s = parse_duration_s(ttl) if ttl is not None else None
    wait_s = parse_duration_s(wait)
    return AcquireOptions(ttl_seconds=ttl_s, wait_seconds=wait_s, create=create, priority=priority)


def note_local_priority(options: AcquireOptions) -> None:
    """--priority without the daemon: say it has no effect (the request itself goes on)."""
    if options.priority is not None:
        session().err.print(
            "migctl: --priority orders requests waiting on the migctl daemon; the local lease "
            "store serves waiting requests in turn, so it has no effect here",
            markup=False,
        )


def store_at(path: Path | None) -> LeaseStore:
    """The lease store at ``--lease-db``, else the machine's (see ``Session.lease_db``)."""
    from migctl.tenancy.leasing import open_store

    return open_store(session().lease_db(path))


def describe_lease(lease: Lease) -> str:
    """``lease 7: MIG-... (1g.10gb, GPU 0 GI 9 CI 0) for alice (job x)``, names escaped.

    Print it with ``markup=False``: a job name may hold ``[`` too."""
    if lease.soft:
        from migctl.cli.render_soft import describe_soft_lease

        return describe_soft_lease(lease)
    holder = escape(lease.owner.describe())
    where = f"GPU {lease.gpu_index} GI {lease.gi_id} CI {lease.ci_id}"
    return f"lease {lease.lease_id}: {lease.uuid} ({lease.profile}, {where}) for {holder}"


def lease_data(lease: Lease) -> dict[str, Any]:
    from migctl.tenancy.environment import lease_environment

    return {"lease": lease.to_dict(), "environment": lease_environment(lease)}


app = typer.Typer(help="Lease MIG devices: acquire, release, renew, list.", no_args_is_help=True)


@app.command("acquire")
def acquire(
    *,
    profile: ProfileOption = None,
    memory: MemoryOption = None,
    sms: SmsOption = None,
    device: DeviceOption = None,
    ttl: TtlOption = None,
    wait: WaitOption = "0",
    job: JobOption = None,
    pid: Annotated[
        int | None, typer.Option("--pid", help="End the lease when this process ends.")
    ] = None,
    create: CreateOption = False,
    priority: PriorityOption = None,
    share: ShareOption = None,
    parent: ParentOption = None,
    oversubscribe: OversubscribeOption = False,
    allow_other_user: AllowOtherUserOption = False,
    lease_db: LeaseDbOption = None,
) -> None:
    """Lease the smallest free MIG device that matches (or with --share a soft device); it
    stays yours until released."""
    selection = selection_from(
        profile, memory, sms, device, share, parent, oversubscribe, allow_other_user
    )
    options = acquire_options(ttl, wait, create, priority)
    if (client := session().daemon) is not None:
        from migctl.cli import remote_leases

        body = remote_leases.lease_body(selection, options, job=job, pid=pid)
        lease = remote_leases.acquire(client, body)
    else:
        from migctl.leases import LeaseOwner
        from migctl.tenancy.leasing import acquire as acquire_lease

        note_local_priority(options)
        owner = LeaseOwner.current(job=job, pid=pid)
        store = store_at(lease_db)
        lease = acquire_lease(session().backend, store, selection, owner, local_options(options))

    def render() -> None:
        session().console.print(describe_lease(lease), markup=False)
        note(
            [
                f"release it with `migctl lease release {lease.lease_id}`",
                f"use it with CUDA_VISIBLE_DEVICES={lease.uuid}"
                if not lease.soft
                else "use it with "
                + " ".join(f"{k}={v}" for k, v in lease_data(lease)["environment"].items()),
            ]
        )

    emit("Lease", lease_data(lease), render)


@app.command("release")
def release(
    target: Annotated[str, typer.Argument(help="A lease id, or the MIG-<uuid> it holds.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Revoke someone else's lease (root only).")
    ] = False,
    lease_db: LeaseDbOption = None,
) -> None:
    """End a lease (yours; or anyone's with --admin as root, or as a daemon admin)."""
    if (client := session().daemon) is not None:
        from migctl.cli import remote_leases

        ended = remote_leases.release(client, target, admin=admin)
    else:
        from migctl.leases import LeaseOwner

        if admin and os.geteuid() != 0:
            raise PermissionDeniedError(
                "--admin needs root", hint="run it with sudo, or ask the lease's holder"
            )
        store = store_at(lease_db)
        ended = store.release(target, user=LeaseOwner.current().user, admin=admin)
    emit(
        "LeaseReleased",
        {"lease": ended.to_dict()},
        lambda: session().console.print(
            f"lease {ended.lease_id} on {ended.uuid}: {ended.end_reason or 'ended'}"
        ),
    )


@app.command("renew")
def renew(
    lease_id: Annotated[int, typer.Argument(help="The lease id.")],
    ttl: TtlOption = None,
    lease_db: LeaseDbOption = None,
) -> None:
    """Push a lease's expiry out again (by its own TTL, or a new --ttl)."""
    from migctl.leases import LeaseOwner
    from migctl.sizes import parse_duration_s
    from migctl.tenancy.holders import expiry_text

    ttl_s = parse_duration_s(ttl) if ttl is not None else None
    if (client := session().daemon) is not None:
        from migctl.cli import remote_leases

        renewed = remote_leases.renew(client, lease_id, ttl_s)
    else:
        store = store_at(lease_db)
        renewed = store.renew(lease_id, ttl_seconds=ttl_s, user=LeaseOwner.current().user)
    emit(
        "LeaseRenewed",
        {"lease": renewed.to_dict()},
        lambda: session().console.print(
            f"lease {renewed.lease_id} on {renewed.uuid}: expires {expiry_text(renewed)}"
        ),
    )


@app.command("list")
def list_leases(
    all_leases: Annotated[
        bool, typer.Option("--all", "-a", help="Ended leases too (history).")
    ] = False,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's.")] = None,
    device: DeviceOption = None,
    lease_db: LeaseDbOption = None,
) -> None:
    """Active leases (holder, job, PID, device, profile, age, expiry); --all adds history.

    Through the daemon, other users' leases show without owner details (JSON: user, job, pid
    null and "redacted": true) unless you are an admin."""
    if (client := session().daemon) is not None:
        from migctl.cli import remote_leases
        from migctl.cli.remote_view import lease_from_out

        found = remote_leases.list_leases(client, history=all_leases, user=user, device=device)
        leases = [lease_from_out(out) for out in found]
        data = found
    else:
        store = store_at(lease_db)
        leases = store.list_leases(active_only=not all_leases, user=user, uuid=device)
        data = [lease.to_dict() for lease in leases]
    now = time.time()
    emit("LeaseList", {"leases": data}, lambda: _render_leases(leases, now, all_leases))


def _render_leases(leases: list[Lease], now: float, history: bool) -> None:
    from migctl.tenancy.holders import age_text, expiry_text

    columns = ["Lease", "User", "Job", "PID", "GPU", "Profile", "MIG device", "Age", "Expires"]
    rows = table(*columns, *(["Ended"] if history else []))
    for lease in leases:
        end = lease.ended_at if lease.ended_at is not None else now
        cells: list[RenderableType] = [
            str(lease.lease_id),
            outside(lease.user),
            outside(lease.job),
            value(lease.pid),
            str(lease.gpu_index),
            lease.profile,
            lease.uuid,
            age_text(end - lease.created_at),
            expiry_text(lease, now),
        ]
        if history:
            cells.append(value(lease.end_reason.value if lease.end_reason else None))
        rows.add_row(*cells)
    print_rows(rows)
    if not leases:
        note(["no leases" if history else "no active leases"])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="lease")
