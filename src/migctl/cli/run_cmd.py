"""``migctl run -- CMD`` and ``migctl env``: use a leased MIG device without handling UUIDs.

Why this exists: the everyday way to use a shared GPU should be one command that gets a free
MIG device, runs the job on it and gives it back, whatever happens to the job (see
``migctl.tenancy.runner``). ``migctl env`` is the same lease for an interactive shell:
``eval "$(migctl env --profile 1g.10gb)"``. Both lease from the session's node
(``migctl.node.leaser``): ``run`` names the command's PID as the holder wherever its processes
are seen (this host, or a daemon on its Unix socket) and releases however the command ends;
``env`` names the calling shell.
"""

from __future__ import annotations

import enum
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.leases_cmd import (
    AllowOtherUserOption,
    CreateOption,
    DeviceOption,
    JobOption,
    LeaseDbOption,
    MemoryOption,
    OversubscribeOption,
    ParentOption,
    PriorityOption,
    ProfileOption,
    ShareOption,
    SmsOption,
    TtlOption,
    WaitOption,
    describe_lease,
    grant_document,
    lease_request_of,
    note_priority,
)
from migctl.cli.render_soft import lease_warnings
from migctl.cli.session import session

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.tenancy.runner import AttachCheck, LeasedHook


class EnvFormat(enum.StrEnum):
    SH = "sh"
    JSON = "json"


def run(
    command: Annotated[
        list[str], typer.Argument(metavar="-- CMD [ARGS]...", help="The command to run.")
    ],
    *,
    profile: ProfileOption = None,
    memory: MemoryOption = None,
    sms: SmsOption = None,
    device: DeviceOption = None,
    create: CreateOption = False,
    wait: WaitOption = "0",
    ttl: TtlOption = None,
    job: JobOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No 'leased ...' line on stderr.")
    ] = False,
    priority: PriorityOption = None,
    share: ShareOption = None,
    parent: ParentOption = None,
    oversubscribe: OversubscribeOption = False,
    allow_other_user: AllowOtherUserOption = False,
    lease_db: LeaseDbOption = None,
) -> None:
    """Run CMD on a leased MIG device; exit with CMD's exit code (128+N if killed by signal N).

    CMD sees CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES set to the device's MIG-<uuid> and
    MIGCTL_LEASE_ID; with --share (a soft device, an MPS share) its parent's UUID and the MPS
    variables. Signals sent to migctl (INT, TERM, HUP, QUIT, USR1, USR2) are passed on;
    the lease is released when CMD ends, however it ends. 126/127: CMD could not be started.
    """
    from migctl.node.leaser import NodeLeaser
    from migctl.tenancy.runner import Interrupted, run_with

    current = session()
    current.use_lease_db(lease_db)
    request = lease_request_of(
        profile, memory, sms, device, ttl=ttl, wait=wait, job=job, create=create,
        priority=priority, share=share, parent=parent, oversubscribe=oversubscribe,
        allow_other_user=allow_other_user,
    )  # fmt: skip
    note_priority(request)
    leaser = NodeLeaser(current.node, request, follows_pids=current.route().follows_local_pids)
    try:
        result = run_with(
            leaser,
            command,
            on_leased=_leased_hook(command, quiet),
            attach_check=_attach_check(),
        )
    except Interrupted as stop:
        raise typer.Exit(128 + stop.signum) from None
    raise typer.Exit(result.exit_code)


def _leased_hook(command: list[str], quiet: bool) -> LeasedHook:
    """Say what was leased; on a simulated machine here, attach the command to the device
    (the simulator's stand-in for the driver seeing the process)."""
    current = session()
    control = current.sim_control()

    def on_leased(lease: Lease, pid: int) -> None:
        if control is not None and not lease.soft:  # MPS clients show themselves
            name = os.path.basename(command[0])[:15]
            control.attach(pid, lease.gpu_index, lease.uuid, 0, name)
        if not quiet:
            current.err.print(
                f"migctl: {describe_lease(lease)}; running {command[0]}", markup=False
            )
            for warning in lease_warnings(lease):
                current.err.print(f"migctl: {warning}", markup=False)

    return on_leased


def _attach_check() -> AttachCheck | None:
    """On this host's node: check in the background that a soft lease's command attached to
    its parent's MPS daemon (a daemon's MPS directories are its own: no check through it)."""
    current = session()
    if not current.route().local:
        return None
    from migctl.node.local import LocalNode
    from migctl.tenancy.soft import watch_attach

    node = current.node
    if not isinstance(node, LocalNode):
        return None
    host = node.mps
    return lambda lease, pid: watch_attach(host, lease, pid)


def env(
    *,
    profile: ProfileOption = None,
    memory: MemoryOption = None,
    sms: SmsOption = None,
    device: DeviceOption = None,
    create: CreateOption = False,
    wait: WaitOption = "0",
    ttl: TtlOption = None,
    job: JobOption = None,
    pid: Annotated[
        int | None,
        typer.Option("--pid", help="Holder process (default: the parent, i.e. your shell)."),
    ] = None,
    output_format: Annotated[
        EnvFormat, typer.Option("--format", "-f", help="sh (export lines) or json.")
    ] = EnvFormat.SH,
    share: ShareOption = None,
    parent: ParentOption = None,
    oversubscribe: OversubscribeOption = False,
    allow_other_user: AllowOtherUserOption = False,
    priority: PriorityOption = None,
    lease_db: LeaseDbOption = None,
) -> None:
    """Lease a MIG device for your shell and print `export` lines: eval "$(migctl env ...)".

    The lease belongs to the calling process (the parent of migctl, normally your shell; pass
    --pid $$ to be sure) and ends when it exits, or with `migctl lease release $MIGCTL_LEASE_ID`
    (through a daemon over TCP it cannot follow your shell: release it, or give it a --ttl).
    """
    from migctl.tenancy.environment import lease_environment, shell_exports

    current = session()
    current.use_lease_db(lease_db)
    holder = pid if pid is not None else os.getppid()
    follow = holder if current.route().follows_local_pids or pid is not None else None
    request = lease_request_of(
        profile, memory, sms, device, ttl=ttl, wait=wait, job=job, pid=follow, create=create,
        priority=priority, share=share, parent=parent, oversubscribe=oversubscribe,
        allow_other_user=allow_other_user,
    )  # fmt: skip
    note_priority(request)
    lease = current.node.acquire(request)
    if current.json or output_format == EnvFormat.JSON:
        from migctl.cli.output import print_document

        print_document("LeaseEnvironment", grant_document(lease))
        return
    sys.stdout.write("\n".join(shell_exports(lease_environment(lease))) + "\n")
    current.err.print(f"migctl: {describe_lease(lease)}", markup=False)
    for warning in lease_warnings(lease):
        current.err.print(f"migctl: {warning}", markup=False)
    if lease.pid is None:
        current.err.print(
            "migctl: the lease cannot follow your shell here (a daemon over TCP): release it "
            f"with `migctl lease release {lease.lease_id}`"
        )


def register(root: typer.Typer) -> None:
    root.command("run", context_settings={"allow_interspersed_args": False})(run)
    root.command("env")(env)
