"""Verbs that hold the machine against a layout file: ``assert`` and ``export``.

Why this exists: ``assert`` answers "does this machine match the layout?" for CI gates and
node health checks (exit 0, or 1 with a readable diff per GPU), judging a mig-parted
config as mig-parted's own assert does (every GPU must be matched); ``export`` writes the
machine as a layout file (native or mig-parted) that applies back as a no-op. Both ask the
session's node (this host, or the daemon that owns it). Registered by ``cli/layouts_cmd.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.gpus import GpuOption
from migctl.cli.layouts_cmd import ConfigOption, FileOption
from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import EXIT_MISMATCH, UsageError

if TYPE_CHECKING:
    from migctl.schemas.reports import CheckReportOut


def assert_cmd(file: FileOption = None, config: ConfigOption = None, gpu: GpuOption = None) -> None:
    """Exit 0 when the machine matches the layout, 1 with a readable diff when not."""
    from migctl.schemas.layouts import LayoutTarget

    if file is None:
        raise UsageError("say which layout to check: -f LAYOUT.yaml (and -c NAME)")
    report = session().node.check(LayoutTarget.from_file(file, config), gpus=gpu)

    def render() -> None:
        note(report.notes)
        for gpu_index, lines in report.differences.items():
            if not lines:
                session().console.print(f"GPU {gpu_index}: matches")
            for line in lines:
                session().console.print(f"GPU {gpu_index}: [red]{line}[/red]")
        if not report.differences:
            session().console.print("[red]no GPU to compare[/red]")

    def document() -> CheckReportOut:
        from migctl.schemas.reports import CheckReportOut

        return CheckReportOut.of(report)

    emit("Assert", document, render)
    if not report.matches:
        raise typer.Exit(EXIT_MISMATCH)


def export_cmd(
    gpu: GpuOption = None,
    fmt: Annotated[str, typer.Option("--format", help="native or mig-parted.")] = "native",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the exported layout.")] = "exported",
) -> None:
    """Write the current layout as a layout file; applying it changes nothing."""
    if fmt not in {"native", "mig-parted"}:
        raise UsageError(f"unknown format {fmt!r}", hint="native or mig-parted")
    text = session().node.export(gpus=gpu, format=fmt, name=name)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        session().err.print(f"wrote {out}")
