"""Verbs about whole GPUs: ``list`` (like ``nvidia-smi -L``), ``status``, ``mode``.

Why this exists: these are the first commands a user runs; they must show MIG device
UUIDs, who uses what (processes with their users, lease holders), and why a MIG mode change
is still pending. Through the migctl daemon they read ``/v1/inventory`` and change MIG mode as
daemon jobs (``cli/remote_gpus.py``); the output is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli import serialize
from migctl.cli.output import emit, lease_text, outside, print_rows, process_text, table
from migctl.cli.session import session

if TYPE_CHECKING:
    from migctl.backends.base import Backend, ModeChange
    from migctl.inventory import GpuView, ProcessView
    from migctl.leases import Lease
    from migctl.model import GpuInfo, MigDevice

JsonFix = Callable[[dict[str, Any]], dict[str, Any]]
GpuOption = Annotated[
    str | None,
    typer.Option(
        "--gpu", "-i", help="GPUs: indexes, UUIDs or PCI bus ids, comma separated, or all."
    ),
]


@dataclass(frozen=True, slots=True)
class _Listing:
    """What ``migctl list`` shows, read directly or through the daemon."""

    infos: list[GpuInfo]
    devices: dict[int, list[MigDevice]]
    procs: Mapping[str, Sequence[ProcessView]]
    holders: Mapping[str, Lease]
    json_gpu: JsonFix | None = None  # through the daemon: marks what the API does not tell


def _listing(gpu: str | None) -> _Listing:
    if (client := session().daemon) is not None:
        from migctl.cli.remote_gpus import machine

        found = machine(client, gpu)
        procs = {
            d.uuid: [p for p in view.processes if p.pid in {x.pid for x in d.processes}]
            for view in found.views
            for d in view.devices
        }
        devices = {view.info.index: list(view.devices) for view in found.views}
        infos = [view.info for view in found.views]
        return _Listing(infos, devices, procs, found.holders, found.json_gpu)
    from migctl.inventory import process_views, resolve_gpus

    backend = session().backend
    infos = [backend.gpu(i) for i in resolve_gpus(backend, gpu)]
    devices = {info.index: backend.mig_devices(info.index) for info in infos}
    local_procs = {d.uuid: process_views(d.processes) for ds in devices.values() for d in ds}
    if not local_procs:  # no MIG device: no lease to look up (and no lease store to open)
        return _Listing(infos, devices, local_procs, {})
    from migctl.tenancy.holders import active_leases

    return _Listing(infos, devices, local_procs, active_leases(session().lease_db()))


def list_gpus(gpu: GpuOption = None) -> None:
    """List GPUs and their MIG devices with UUIDs (like nvidia-smi -L), users and leases."""
    found = _listing(gpu)
    infos, devices, procs, holders = found.infos, found.devices, found.procs, found.holders

    def render() -> None:
        columns = ["GPU", "Name", "UUID", "MIG", "Placement", "Used MiB", "Total MiB"]
        rows = table(*columns, "Processes", "Lease")
        for info in infos:
            mig = "n/a" if info.mig is None else ("on" if info.mig.current else "off")
            if info.mig is not None and info.mig.change_pending:
                mig += " (pending)"
            used, total = str(info.memory_used_mib), str(info.memory_total_mib)
            rows.add_row(str(info.index), info.name, info.uuid, mig, "", used, total, "", "")
            for device in devices[info.index]:
                label = f"  MIG {device.ci_profile} (GI {device.gi_id}, CI {device.ci_id})"
                rows.add_row(
                    "",
                    label,
                    device.uuid,
                    "",
                    str(device.placement),
                    str(device.memory_used_mib),
                    str(device.memory_total_mib),
                    process_text(list(procs[device.uuid])),
                    lease_text(holders.get(device.uuid)),
                )
        print_rows(rows)

    data = [
        {
            **serialize.gpu_info(i),
            "mig_devices": [
                {
                    **serialize.mig_device(d, holders),
                    "processes": [serialize.process(p) for p in procs[d.uuid]],
                }
                for d in devices[i.index]
            ],
        }
        for i in infos
    ]
    if found.json_gpu is not None:
        data = [found.json_gpu(gpu_data) for gpu_data in data]
    emit("GpuList", {"gpus": data}, render)


def machine_views(
    gpu: str | None, *, with_holders: bool = False
) -> tuple[list[GpuView], Mapping[str, Lease], str, JsonFix | None]:
    """The GPUs as views, their lease holders, where they were read, a JSON fix-up."""
    if (client := session().daemon) is not None:
        from migctl.cli.remote_gpus import machine

        found = machine(client, gpu)
        return found.views, found.holders, found.description, found.json_gpu
    from migctl.inventory import machine_view, resolve_gpus
    from migctl.tenancy.holders import active_leases

    backend = session().backend
    views = machine_view(backend, resolve_gpus(backend, gpu))
    wanted = with_holders or any(v.devices for v in views)
    holders = active_leases(session().lease_db()) if wanted else {}
    return views, holders, backend.description, None


def status(gpu: GpuOption = None) -> None:
    """One screen per GPU: a map of its memory slices, instances, MIG devices, processes."""
    from migctl.cli.render_status import gpu_panel

    current = session()
    views, holders, description, json_gpu = machine_views(gpu)

    def render() -> None:
        current.console.print(outside(description), style="dim")
        for view in views:
            current.console.print(gpu_panel(view, holders))

    gpus = [serialize.gpu_view(v, holders) for v in views]
    if json_gpu is not None:
        gpus = [json_gpu(g) for g in gpus]
    emit("Status", {"backend": description, "gpus": gpus}, render)


mode_app = typer.Typer(help="Show, enable or disable MIG mode.", no_args_is_help=True)


@mode_app.command("show")
def mode_show(gpu: GpuOption = None) -> None:
    """Current and pending MIG mode of each GPU."""
    if session().daemon is not None:
        infos = [view.info for view in machine_views(gpu)[0]]
    else:
        from migctl.inventory import resolve_gpus

        backend = session().backend
        infos = [backend.gpu(i) for i in resolve_gpus(backend, gpu)]

    def render() -> None:
        rows = table("GPU", "Name", "Current", "Pending")
        for info in infos:
            if info.mig is None:
                rows.add_row(str(info.index), info.name, "not supported", "-")
            else:
                rows.add_row(
                    str(info.index),
                    info.name,
                    "enabled" if info.mig.current else "disabled",
                    "enabled" if info.mig.pending else "disabled",
                )
        print_rows(rows)

    data = [serialize.gpu_info(i) for i in infos]
    if session().daemon is not None:
        from migctl.cli.remote_view import pci_or_none

        data = [{**d, "pci_device_id": pci_or_none(d["pci_device_id"])} for d in data]
    emit("MigMode", {"gpus": data}, render)


def _mode_changes(
    gpu: str | None, enabled: bool, force: bool
) -> tuple[list[ModeChange], list[GpuInfo]]:
    """The changes made, and the GPUs ``all`` passed over (no MIG); checked before any change."""
    from migctl.inventory import select_gpus
    from migctl.workflow import mode_targets

    every_gpu = gpu is None or gpu.strip().lower() in {"", "all"}
    if (client := session().daemon) is not None:
        from migctl.cli.remote_gpus import change_mode

        infos = [view.info for view in machine_views(gpu)[0]]
        targets = mode_targets(infos, every_gpu=every_gpu)
        chosen = ",".join(map(str, targets.gpus))
        return change_mode(client, chosen, enabled, force=force), targets.skipped
    from migctl.workflow import set_mode

    backend = session().backend
    infos = backend.gpus()
    chosen_gpus = select_gpus(infos, gpu)
    targets = mode_targets([i for i in infos if i.index in chosen_gpus], every_gpu=every_gpu)
    if not enabled and force:
        return _disable_destroying(backend, targets.gpus), targets.skipped
    return set_mode(backend, targets.gpus, enabled), targets.skipped


def _disable_destroying(backend: Backend, gpus: Sequence[int]) -> list[ModeChange]:
    """``mode disable --force`` here: the daemon's way, one engine apply to "no instances, MIG
    off" with force (checkpoint, journal, roll back on failure; processes still refuse)."""
    from migctl.backends.base import ModeChange
    from migctl.engine.apply import apply
    from migctl.planner import DesiredLayout

    targets = {g: DesiredLayout((), False) for g in gpus}
    outcome = apply(backend, targets, force=True, files=session().engine_files())
    if outcome.changed or outcome.rolled_back:
        session().refresh_cdi()
    if outcome.rollback_error is not None:
        raise outcome.rollback_error
    if outcome.error is not None:
        raise outcome.error
    changes = []
    for index in gpus:
        mig = backend.gpu(index).mig
        current, pending = (mig.current, mig.pending) if mig is not None else (False, False)
        changes.append(ModeChange(index, False, current, pending, outcome.pending.get(index)))
    return changes


def _change(gpu: str | None, enabled: bool, force: bool = False) -> None:
    current = session()
    changes, skipped = _mode_changes(gpu, enabled, force)
    word = "enabled" if enabled else "disabled"

    def render() -> None:  # the pending ones are the error raised below, said once
        for info in skipped:
            current.console.print(
                outside(f"GPU {info.index} ({info.name}): no MIG support, skipped"),
                style="yellow",
            )
        for change in changes:
            if change.done:
                current.console.print(f"GPU {change.gpu_index}: MIG {word}")

    emit(
        "MigModeChange",
        {
            "changes": [serialize.mode_change(c) for c in changes],
            "skipped": [
                {"gpu": i.index, "name": i.name, "reason": "no MIG support"} for i in skipped
            ],
        },
        render,
    )
    pending = {c.gpu_index: c.reason for c in changes if not c.done}
    if pending:
        from migctl.cli.apply_report import pending_error

        gpus = ",".join(map(str, pending))
        raise pending_error(pending, f"MIG mode is not yet {word} on GPU {gpus}")


@mode_app.command("enable")
def mode_enable(gpu: GpuOption = None) -> None:
    """Enable MIG mode (the GPU is reset when idle; otherwise the change stays pending).

    -i all (or no -i) means every MIG-capable GPU; others are skipped and named. A GPU named
    with -i that has no MIG is refused before any GPU is changed."""
    _change(gpu, True)


@mode_app.command("disable")
def mode_disable(
    gpu: GpuOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Destroy the GPU instances (leased ones too) with the change; without it, "
            "GPU instances must be destroyed first (exit 6 names them).",
        ),
    ] = False,
) -> None:
    """Disable MIG mode: refused while GPU instances exist (exit 6), unless --force."""
    _change(gpu, False, force)


def metrics() -> None:
    """The machine's metrics in Prometheus text format, once (the daemon serves /metrics)."""
    if (client := session().daemon) is not None:
        from migctl.cli.remote_gpus import metrics_text

        typer.echo(metrics_text(client), nl=False)
        return
    from migctl.metrics import render

    typer.echo(render(session().backend, session().lease_db()).decode(), nl=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_gpus)
    app.command("status")(status)
    app.add_typer(mode_app, name="mode")


def register_metrics(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
