"""Verbs about whole GPUs: ``list`` (like ``nvidia-smi -L``), ``status``, ``mode``, ``metrics``.

Why this exists: these are the first commands a user runs; they must show MIG device
UUIDs, who uses what (processes with their users, lease holders), and why a MIG mode change
is still pending. Each asks the session's node (this host, or the migctl daemon) once and
renders what it returns: the output is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.output import emit, lease_text, me, outside, print_rows, process_text, table
from migctl.cli.session import session

if TYPE_CHECKING:
    from migctl.backends.base import ModeChange
    from migctl.model import GpuInfo, GpuView, MigDevice, ProcessView
    from migctl.reports import Inventory
    from migctl.schemas.listings import GpuListOut, MigModesOut, ModeReportOut
    from migctl.schemas.machine import InventoryOut

GpuOption = Annotated[
    str | None,
    typer.Option(
        "--gpu", "-i", help="GPUs: indexes, UUIDs or PCI bus ids, comma separated, or all."
    ),
]


def _device_processes(view: GpuView, device: MigDevice) -> list[ProcessView]:
    pids = {p.pid for p in device.processes}
    return [p for p in view.processes if p.pid in pids]


def _mig_text(info: GpuInfo) -> str:
    mig = "n/a" if info.mig is None else ("on" if info.mig.current else "off")
    if info.mig is not None and info.mig.change_pending:
        mig += " (pending)"
    return mig


def list_gpus(gpu: GpuOption = None) -> None:
    """List GPUs and their MIG devices with UUIDs (like nvidia-smi -L), users and leases."""
    inventory = session().node.inventory(gpu)
    holders = inventory.holders

    def render() -> None:
        columns = ["GPU", "Name", "UUID", "MIG", "Placement", "Used MiB", "Total MiB"]
        rows = table(*columns, "Processes", "Lease")
        for view in inventory.gpus:
            info = view.info
            used, total = str(info.memory_used_mib), str(info.memory_total_mib)
            rows.add_row(str(info.index), info.name, info.uuid, _mig_text(info), "", used, total)
            for device in view.devices:
                label = f"  MIG {device.ci_profile} (GI {device.gi_id}, CI {device.ci_id})"
                rows.add_row(
                    "",
                    label,
                    device.uuid,
                    "",
                    str(device.placement),
                    str(device.memory_used_mib),
                    str(device.memory_total_mib),
                    process_text(_device_processes(view, device)),
                    lease_text(holders.get(device.uuid)),
                )
        print_rows(rows)
        _print_soft(inventory)

    def document() -> GpuListOut:
        from migctl.schemas.listings import GpuListOut

        return GpuListOut.of(inventory, me())

    emit("GpuList", document, render)


def _print_soft(inventory: Inventory) -> None:
    """The soft devices (MPS shares) under the MIG devices, with the isolation truth."""
    from migctl.cli.output import note
    from migctl.cli.render_soft import isolation_notes, soft_table

    shown = soft_table(inventory.soft)
    if shown is not None:
        print_rows(shown)
        note(isolation_notes(inventory.soft))


def status(gpu: GpuOption = None) -> None:
    """One screen per GPU: a map of its memory slices, instances, MIG devices, processes."""
    from migctl.cli.render_status import gpu_panel

    current = session()
    inventory = current.node.inventory(gpu)

    def render() -> None:
        current.console.print(outside(inventory.description), style="dim")
        holders = inventory.holders
        for view in inventory.gpus:
            current.console.print(gpu_panel(view, holders))
        _print_soft(inventory)

    def document() -> InventoryOut:
        from migctl.schemas.listings import inventory_out

        return inventory_out(inventory, me())

    emit("Status", document, render)


mode_app = typer.Typer(help="Show, enable or disable MIG mode.", no_args_is_help=True)


@mode_app.command("show")
def mode_show(gpu: GpuOption = None) -> None:
    """Current and pending MIG mode of each GPU."""
    infos = [view.info for view in session().node.inventory(gpu).gpus]

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

    def document() -> MigModesOut:
        from migctl.schemas.listings import MigModesOut

        return MigModesOut.of(infos)

    emit("MigMode", document, render)


def _without_mig(gpu: str | None) -> list[GpuInfo]:
    """The GPUs ``-i all`` (or no ``-i``) passes over for lack of MIG, to name them."""
    if gpu is not None and gpu.strip().lower() not in {"", "all"}:
        return []  # GPUs named one by one: the node refuses any without MIG
    return [view.info for view in session().node.inventory().gpus if view.info.mig is None]


def _change(gpu: str | None, enabled: bool, force: bool = False) -> None:
    current = session()
    skipped = _without_mig(gpu)
    changes = current.node.set_mode(gpu, enabled=enabled, force=force)
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

    emit("MigModeChange", lambda: _mode_report(changes, skipped), render)
    pending = {c.gpu_index: c.reason for c in changes if not c.done}
    if pending:
        from migctl.cli.apply_report import pending_error

        gpus = ",".join(map(str, pending))
        raise pending_error(pending, f"MIG mode is not yet {word} on GPU {gpus}")


def _mode_report(changes: Sequence[ModeChange], skipped: Sequence[GpuInfo]) -> ModeReportOut:
    from migctl.schemas.listings import ModeReportOut, SkippedGpuOut
    from migctl.schemas.reports import ModeChangeOut

    return ModeReportOut(
        changes=[ModeChangeOut.of(c) for c in changes],
        skipped=[
            SkippedGpuOut(gpu_index=i.index, name=i.name, reason="no MIG support") for i in skipped
        ],
    )


@mode_app.command("enable")
def mode_enable(
    gpu: GpuOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="End the soft leases (MPS shares) of the whole GPUs with the change; without "
            "it, a leased share of a whole GPU refuses the change (exit 6 names it).",
        ),
    ] = False,
) -> None:
    """Enable MIG mode (the GPU is reset when idle; otherwise the change stays pending).

    -i all (or no -i) means every MIG-capable GPU; others are skipped and named. A GPU named
    with -i that has no MIG is refused before any GPU is changed. Soft devices (MPS shares) of a
    whole GPU go with the change: a leased one refuses it unless --force."""
    _change(gpu, True, force)


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
    typer.echo(session().node.metrics(), nl=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_gpus)
    app.command("status")(status)
    app.add_typer(mode_app, name="mode")


def register_metrics(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
