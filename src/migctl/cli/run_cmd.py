"""``migctl run -- CMD`` and ``migctl env``: use a leased MIG device without handling UUIDs.

Why this exists: the everyday way to use a shared GPU should be one command that gets a free
MIG device, runs the job on it and gives it back, whatever happens to the job (see
``migctl.tenancy.runner``). ``migctl env`` is the same lease for an interactive shell:
``eval "$(migctl env --profile 1g.10gb)"``. Through the migctl daemon both lease from it
(``cli/remote_leases.py``): ``run`` names the command's PID as the holder on the Unix socket and
releases through the daemon however the command ends; ``env`` names the calling shell.
"""

from __future__ import annotations

import enum
import json
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
    acquire_options,
    describe_lease,
    lease_data,
    local_options,
    note_local_priority,
    selection_from,
    store_at,
)
from migctl.cli.session import session

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.tenancy.runner import LeasedHook


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
    from migctl.tenancy.runner import Interrupted, run_leased, run_with

    current = session()
    selection = selection_from(
        profile, memory, sms, device, share, parent, oversubscribe, allow_other_user
    )
    options = acquire_options(ttl, wait, create, priority)
    try:
        if (client := current.daemon) is not None:
            from migctl.cli.remote_leases import DaemonLeaser

            leaser = DaemonLeaser(client, selection, options, job)
            leaser.check()
            result = run_with(leaser, command, on_leased=_say_leased(command, quiet))
        else:
            note_local_priority(options)
            store = store_at(lease_db)
            hook = _leased_hook(command, quiet)
            result = run_leased(
                current.backend,
                store,
                command,
                selection,
                local_options(options),
                job=job,
                on_leased=hook,
            )
    except Interrupted as stop:
        raise typer.Exit(128 + stop.signum) from None
    raise typer.Exit(result.exit_code)


def _say_leased(command: list[str], quiet: bool) -> LeasedHook:
    """Through the daemon: say what was leased (the daemon's GPUs see the process itself)."""

    def on_leased(lease: Lease, _pid: int) -> None:
        if not quiet:
            session().err.print(
                f"migctl: {describe_lease(lease)}; running {command[0]}", markup=False
            )

    return on_leased


def _leased_hook(command: list[str], quiet: bool) -> LeasedHook:
    """Attach the command to the device on the simulator; say what was leased."""
    from migctl.backends.select import open_sim_control
    from migctl.tenancy.devnodes import is_simulated

    current = session()

    def on_leased(lease: Lease, pid: int) -> None:
        if is_simulated(current.backend) and not lease.soft:  # MPS clients show themselves
            control = open_sim_control(current.sim, current.catalog)
            name = os.path.basename(command[0])[:15]
            control.attach(pid, lease.gpu_index, lease.uuid, 0, name)
        if not quiet:
            current.err.print(
                f"migctl: {describe_lease(lease)}; running {command[0]}", markup=False
            )

    return on_leased


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
    from migctl.cli.output import SCHEMA
    from migctl.leases import LeaseOwner
    from migctl.tenancy.environment import lease_environment, shell_exports
    from migctl.tenancy.leasing import acquire

    current = session()
    selection = selection_from(
        profile, memory, sms, device, share, parent, oversubscribe, allow_other_user
    )
    options = acquire_options(ttl, wait, create, priority)
    holder = pid if pid is not None else os.getppid()
    if (client := current.daemon) is not None:
        from migctl.cli import remote_leases

        follow = holder if client.on_socket or pid is not None else None
        body = remote_leases.lease_body(selection, options, job=job, pid=follow)
        lease = remote_leases.acquire(client, body)
    else:
        note_local_priority(options)
        owner = LeaseOwner.current(job=job, pid=holder)
        store = store_at(lease_db)
        lease = acquire(current.backend, store, selection, owner, local_options(options))
    variables = lease_environment(lease)
    if current.json or output_format == EnvFormat.JSON:
        payload = {"schema": SCHEMA, "kind": "LeaseEnvironment", **lease_data(lease)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    sys.stdout.write("\n".join(shell_exports(variables)) + "\n")
    current.err.print(f"migctl: {describe_lease(lease)}", markup=False)
    if lease.pid is None and current.daemon is not None:
        current.err.print(
            "migctl: over TCP the lease cannot follow your shell: release it with "
            f"`migctl lease release {lease.lease_id}`"
        )


def register(root: typer.Typer) -> None:
    root.command("run", context_settings={"allow_interspersed_args": False})(run)
    root.command("env")(env)
