"""``migctl top``: a live view of every GPU, its MIG slices, memory, processes and lease holders.

Why this exists: on a shared machine the question "who is on which slice right now, and how
full is it?" is asked continuously; ``top`` answers it in place, refreshing every few seconds
(Rich Live on a terminal). ``--once`` / ``--iterations N`` make it finite, and when the output
is not a terminal each refresh is printed as one frame, so scripts and tests can read it.
Each frame is one read of the session's node (through the migctl daemon, one
``GET /v1/inventory``). Names from outside (lease
holders, jobs, processes) are shown escaped, never as terminal control sequences.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from migctl.cli.session import session
from migctl.errors import UsageError
from migctl.untrusted import escape


def _frame(gpu: str | None) -> RenderableType:
    from migctl.cli.render_status import gpu_panel

    inventory = session().node.inventory(gpu)
    views, holders, description = inventory.gpus, inventory.holders, inventory.description
    leased = sum(1 for v in views for d in v.devices if d.uuid in holders)
    devices = sum(len(v.devices) for v in views)
    busy = sum(1 for v in views for d in v.devices if d.processes)
    stamp = datetime.now().strftime("%H:%M:%S")
    header = Text(
        f"migctl top  {stamp}  {escape(description)}  "
        f"MIG devices: {devices}, leased {leased}, busy {busy}",
        style="bold",
    )
    return Group(header, *(gpu_panel(view, holders) for view in views))


def top(
    gpu: Annotated[
        str | None, typer.Option("--gpu", "-i", help="GPUs to show (default all).")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", "-n", help="Seconds between refreshes.")
    ] = 2.0,
    iterations: Annotated[
        int | None, typer.Option("--iterations", help="Stop after this many refreshes.")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Show one frame and exit.")] = False,
) -> None:
    """Live view of GPUs, MIG slices, memory, processes and lease holders (Ctrl-C quits)."""
    if interval <= 0:
        raise UsageError("--interval must be > 0 seconds")
    if iterations is not None and iterations < 1:
        raise UsageError("--iterations must be >= 1")
    if session().json:
        raise UsageError(
            "top is a live view for people and has no JSON form",
            hint="for the same data as JSON: migctl status -o json (or migctl list -o json)",
        )
    count = 1 if once else iterations
    console = session().console
    if not console.is_terminal:
        _print_frames(gpu, count, interval)
        return
    from rich.live import Live

    with (
        contextlib.suppress(KeyboardInterrupt),  # Ctrl-C is how one leaves top: exit 0
        Live(_frame(gpu), console=console, auto_refresh=False, screen=False) as live,
    ):
        shown = 1
        while count is None or shown < count:
            time.sleep(interval)
            live.update(_frame(gpu), refresh=True)
            shown += 1


def _print_frames(gpu: str | None, count: int | None, interval: float) -> None:
    """Not a terminal: print each frame in turn (forever without --once/--iterations)."""
    console = session().console
    shown = 0
    while count is None or shown < count:
        if shown:
            time.sleep(interval)
            console.rule()
        console.print(_frame(gpu))
        shown += 1


def register(root: typer.Typer) -> None:
    root.command("top")(top)
