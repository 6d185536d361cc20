"""``migctl fleet agent|controller|status|metrics|demo``: many GPU hosts under one Dask scheduler.

Why this exists: the fleet's processes and views need a command line like every other part of
migctl: the node agent beside each host's daemon (``agent``), the controller as its own process
(``controller``; or ``dask scheduler --preload migctl.fleet.plugin``), what the whole fleet
holds and does (``status``, ``metrics``), and a simulated 4-host fleet to try it (``demo``).
Each verb parses its options and calls one function of ``migctl.fleet``. The fleet needs the
``fleet`` extra (Dask); without it the verbs say how to install it (exit 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.output import emit, note, outside, print_rows, table
from migctl.cli.session import session
from migctl.errors import InvalidInputError, NotSupportedError, UsageError
from migctl.reports import SOFT_ISOLATION_NOTE

if TYPE_CHECKING:
    from migctl.schemas.fleet import FleetStatusOut

app = typer.Typer(
    help="Many GPU hosts under one Dask scheduler: MIG reshaped where the work waits.",
    no_args_is_help=True,
)
SchedulerOption = Annotated[
    str,
    typer.Option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        help="The Dask scheduler, e.g. tcp://10.0.0.1:8786.",
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the scheduler.", min=0.1, max=600)
]


@contextmanager
def fleet_needed(verb: str) -> Iterator[None]:
    """The ``fleet`` extra (Dask) missing: say which part and how to install it (exit 7)."""
    from migctl.extras import install_command

    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in ("dask", "distributed", "httpx"):
            raise
        raise NotSupportedError(
            f"{verb} needs {missing}, part of migctl's 'fleet' extra (Dask), not installed",
            hint=f"install it: {install_command('fleet')}",
            context={"missing": missing},
        ) from exc


@app.command("agent")
def agent(
    scheduler: SchedulerOption,
    node: Annotated[
        str | None,
        typer.Option(
            "--node", help="This host's daemon: unix:///run/migctl/migctl.sock or http://HOST:PORT."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The host's name in the fleet (default: its own).")
    ] = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", help="Seconds between reports.", min=0.05, max=60)
    ] = 1.0,
    stop_grace: Annotated[
        float,
        typer.Option(
            "--stop-grace", help="SIGTERM to SIGKILL for a worker's group.", min=0.1, max=3600
        ),
    ] = 10.0,
    soft_share: Annotated[
        list[int] | None,
        typer.Option(
            "--soft-share",
            help="Repeatable: keep a worker on an MPS share of this percent of each GPU without "
            "MIG (e.g. --soft-share 50 --soft-share 25 --soft-share 25).",
        ),
    ] = None,
) -> None:
    """Run this host's node agent (one per host, beside its daemon; --sim: a simulated host).

    It reports the host's GPUs, MIG devices and workers to the fleet controller through the
    scheduler, and carries out its orders: reshape through the node (never forced), start and
    stop one `dask worker` per MIG device under `migctl run`. With --soft-share it also keeps
    one worker per share on each GPU without MIG (`migctl run --share P% --parent GPU`; never
    reshaped). Runs until SIGTERM/SIGINT, then stops its workers.
    """
    current = session()
    if node is not None and current.sim is not None:
        raise UsageError(
            f"--node {node} (a daemon) and --sim {current.sim} (a simulated machine) contradict "
            "each other",
            hint="give one: the host's daemon with --node, or a simulated host with --sim",
        )
    with fleet_needed("migctl fleet agent"):
        from migctl.fleet.service import agent_for, run_agent
        from migctl.fleet.soft_workers import check_soft_shares

    try:
        shares = check_soft_shares(tuple(soft_share or ()))
    except InvalidInputError as error:
        raise UsageError(f"--soft-share: {error.message}", hint=error.hint) from None
    found = agent_for(
        current.settings,
        node_url=node,
        name=name,
        scheduler=scheduler,
        heartbeat_s=heartbeat,
        stop_grace_s=stop_grace,
        soft_shares=shares,
    )
    run_agent(found)


@app.command("controller")
def controller(
    scheduler: SchedulerOption,
    cycle: Annotated[float, typer.Option("--cycle", help="Seconds between decision cycles.")] = 2.0,
    drain_deadline: Annotated[
        float, typer.Option("--drain-deadline", help="Wait this long for running tasks.")
    ] = 120.0,
    pending_deadline: Annotated[
        float, typer.Option("--pending-deadline", help="A reshape in flight counts this long.")
    ] = 180.0,
    stop_grace: Annotated[
        float, typer.Option("--stop-grace", help="SIGTERM to SIGKILL for a worker's group.")
    ] = 10.0,
) -> None:
    """Run the fleet controller as its own process (one per scheduler; a second is refused).

    The same controller runs inside the scheduler with `dask scheduler --preload
    migctl.fleet.plugin`. Runs until SIGTERM/SIGINT.
    """
    from migctl.fleet.policy import Policy

    policy = Policy(
        cycle_s=cycle,
        drain_deadline_s=drain_deadline,
        pending_deadline_s=pending_deadline,
        stop_grace_s=stop_grace,
    )
    with fleet_needed("migctl fleet controller"):
        from migctl.fleet.service import run_controller

    run_controller(scheduler, policy)


@app.command("status")
def status(scheduler: SchedulerOption, timeout: TimeoutOption = 10.0) -> None:
    """Every host, GPU, slice, worker and task of the fleet, as the controller last saw it."""
    with fleet_needed("migctl fleet status"):
        from migctl.fleet.service import read_status

    view = read_status(scheduler, timeout)
    emit("FleetStatus", lambda: view, lambda: _render(view))


@app.command("metrics")
def metrics(scheduler: SchedulerOption, timeout: TimeoutOption = 10.0) -> None:
    """The fleet's Prometheus metrics (host labels), from the controller."""
    with fleet_needed("migctl fleet metrics"):
        from migctl.fleet.service import read_metrics

    session().console.out(read_metrics(scheduler, timeout), end="", highlight=False)


@app.command("demo")
def demo(
    hosts: Annotated[int, typer.Option("--hosts", help="Simulated hosts (1-8).")] = 4,
) -> None:
    """A simulated fleet (4 hosts, an H100 each) where Dask tasks asking for MIG sizes get them
    by reshaping idle slices; prints what happened and leaves nothing behind."""
    if not 1 <= hosts <= 8:
        raise InvalidInputError(f"--hosts must be from 1 to 8, not {hosts}", hint="e.g. --hosts 4")
    with fleet_needed("migctl fleet demo"):
        from migctl.fleet.demo import run_demo

    run_demo(hosts, session().console.print)


def _render(view: FleetStatusOut) -> None:
    control = view.controller
    console = session().console
    console.print(
        f"scheduler {view.scheduler}; controller: {control.mode} ({control.holder}), "
        f"{control.cycles} cycles, last {control.last_cycle_s:.3f} s; reshapes done "
        f"{control.reshapes_done}; tasks waiting {len(view.waiting)}; re-run {control.tasks_rerun}",
        markup=False,
        highlight=False,
    )
    rows = table("Host", "GPU", "Slice", "Device", "State", "Worker", "Tasks")
    for host in view.hosts:
        if host.error or not (host.gpus or host.soft):
            rows.add_row(outside(host.name), "", "", "", outside(host.error or "no GPUs"), "", "")
        for gpu in host.gpus:
            for item in gpu.slices:
                state = "reshaping" if gpu.reshaping else "busy" if item.busy else "idle"
                worker = item.worker
                tasks = ", ".join(t.key for t in worker.tasks[:3]) if worker else ""
                rows.add_row(
                    outside(host.name),
                    str(gpu.index),
                    f"{item.profile}@{item.placement.start}:{item.placement.size}",
                    outside(item.uuid),
                    state,
                    outside(f"{worker.status}" if worker else ""),
                    outside(tasks),
                )
        for soft in host.soft:
            worker = soft.worker_view
            rows.add_row(
                outside(host.name),
                str(soft.gpu),
                f"soft {soft.percent}% {soft.memory_limit_mib} MiB",
                outside(soft.uuid),
                f"isolation {soft.isolation}",
                outside(f"{worker.status}" if worker else ""),
                outside(", ".join(t.key for t in worker.tasks[:3]) if worker else ""),
            )
    print_rows(rows)
    if any(host.soft for host in view.hosts):
        note([f"isolation soft: {SOFT_ISOLATION_NOTE}"])
    note(f"reshape {r.id}: {r.host} GPU {r.gpu}, {r.phase}, {r.age_s:.0f} s" for r in view.reshapes)
