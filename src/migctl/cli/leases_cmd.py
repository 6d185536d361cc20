"""``migctl lease acquire|release|renew|list``: lease MIG devices by hand.

Why this exists: a MIG device shared by several people must be handed out by one authority,
never by word of mouth. These verbs lease by profile (``--profile 1g.10gb``), by need
(``--memory 12GiB``, ``--sms 20``) or by device (``--device MIG-...``), optionally creating a
device in free slices (``--create``), and show who holds what. The selection options defined
here are shared with ``migctl run`` and ``migctl env`` (``cli/run_cmd.py``). Each verb asks the
session's node: this host's lease store (``--lease-db`` chooses its file), or through the migctl
daemon its own (``--lease-db`` then does not apply).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli.output import emit, me, note, outside, print_rows, table, value
from migctl.cli.session import session
from migctl.untrusted import escape

if TYPE_CHECKING:
    from rich.console import RenderableType

    from migctl.leases import Lease
    from migctl.schemas.leases import LeaseListOut, LeaseRequest
    from migctl.schemas.listings import LeaseGrantOut, SingleLeaseOut

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
    typer.Option(
        "--wait", "-w", help="Wait up to this long for a device (30, 90s, 5m; at most 1h)."
    ),
]
TtlOption = Annotated[
    str | None,
    typer.Option(
        "--ttl", help="The lease ends this long after the last renewal (5m, 2h; at most 30d)."
    ),
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


def lease_request_of(
    profile: str | None,
    memory: str | None,
    sms: int | None,
    device: str | None,
    **options: Any,
) -> LeaseRequest:
    """The lease request of the selection options, checked before any node is asked."""
    from migctl.cli.requests import lease_request

    return lease_request(profile=profile, memory=memory, sms=sms, device=device, **options)


def note_priority(request: LeaseRequest) -> None:
    """--priority where no daemon orders the waiting requests: say it has no effect (the
    request itself goes on)."""
    if request.priority is not None and session().route().local:
        session().err.print(
            "migctl: --priority orders requests waiting on the migctl daemon; the local lease "
            "store serves waiting requests in turn, so it has no effect here",
            markup=False,
        )


def describe_lease(lease: Lease) -> str:
    """``lease 7: MIG-... (1g.10gb, GPU 0 GI 9 CI 0) for alice (job x)``, names escaped.

    Print it with ``markup=False``: a job name may hold ``[`` too."""
    if lease.soft:
        from migctl.cli.render_soft import describe_soft_lease

        return describe_soft_lease(lease)
    holder = escape(lease.owner.describe())
    where = f"GPU {lease.gpu_index} GI {lease.gi_id} CI {lease.ci_id}"
    return f"lease {lease.lease_id}: {lease.uuid} ({lease.profile}, {where}) for {holder}"


def grant_document(lease: Lease) -> LeaseGrantOut:
    """The lease and the variables that use it (``lease acquire``, ``env``): for a soft device
    its parent and the MPS client variables."""
    from migctl.schemas.listings import LeaseGrantOut
    from migctl.tenancy.environment import lease_environment

    return LeaseGrantOut.of(lease, lease_environment(lease), me())


def _lease_document(lease: Lease) -> SingleLeaseOut:
    from migctl.schemas.listings import SingleLeaseOut, lease_out

    return SingleLeaseOut(lease=lease_out(lease, me()))


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
    session().use_lease_db(lease_db)
    request = lease_request_of(
        profile, memory, sms, device, ttl=ttl, wait=wait, job=job, pid=pid, create=create,
        priority=priority, share=share, parent=parent, oversubscribe=oversubscribe,
        allow_other_user=allow_other_user,
    )  # fmt: skip
    note_priority(request)
    lease = session().node.acquire(request)

    def render() -> None:
        session().console.print(describe_lease(lease), markup=False)
        from migctl.cli.render_soft import lease_warnings

        note(
            [
                *lease_warnings(lease),
                f"release it with `migctl lease release {lease.lease_id}`",
                f"use it with CUDA_VISIBLE_DEVICES={lease.uuid}"
                if not lease.soft
                else "use it with "
                + " ".join(f"{k}={v}" for k, v in grant_document(lease).environment.items()),
            ]
        )

    emit("Lease", lambda: grant_document(lease), render)


@app.command("release")
def release(
    target: Annotated[str, typer.Argument(help="A lease id, or the MIG-<uuid> it holds.")],
    admin: Annotated[
        bool,
        typer.Option("--admin", help="Revoke someone else's lease (root here; a daemon's admins)."),
    ] = False,
    lease_db: LeaseDbOption = None,
) -> None:
    """End a lease (yours; or anyone's with --admin as root, or as a daemon admin)."""
    session().use_lease_db(lease_db)
    ended = session().node.release(target, admin=admin)
    emit(
        "LeaseReleased",
        lambda: _lease_document(ended),
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
    from migctl.sizes import parse_duration_s
    from migctl.tenancy.holders import expiry_text

    session().use_lease_db(lease_db)
    ttl_s = parse_duration_s(ttl) if ttl is not None else None
    renewed = session().node.renew(lease_id, ttl_s)
    emit(
        "LeaseRenewed",
        lambda: _lease_document(renewed),
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
    session().use_lease_db(lease_db)
    leases = [
        lease
        for lease in session().node.leases(history=all_leases)
        if (user is None or lease.user == user) and (device is None or lease.uuid == device)
    ]
    now = time.time()

    def document() -> LeaseListOut:
        from migctl.schemas.leases import LeaseListOut
        from migctl.schemas.listings import lease_out

        mine = me()
        return LeaseListOut(leases=[lease_out(lease, mine) for lease in leases])

    emit("LeaseList", document, lambda: _render_leases(leases, now, all_leases))


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
