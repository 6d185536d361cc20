"""Verbs that hold the machine against a layout file: ``assert`` and ``export``.

Why this exists: ``assert`` answers "does this machine match the layout?" for CI gates and
node health checks (exit 0, or 1 with a readable diff per GPU), judging a mig-parted
config as mig-parted's own assert does (every GPU must be matched); ``export`` writes the
machine as a layout file (native or mig-parted) that applies back as a no-op. Both read
through the daemon when one serves this host. Registered by ``cli/layouts_cmd.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from migctl.cli.gpus import GpuOption
from migctl.cli.layouts_cmd import ConfigOption, FileOption, gpu_models, layout_file_targets
from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import EXIT_MISMATCH, UsageError


def assert_cmd(file: FileOption = None, config: ConfigOption = None, gpu: GpuOption = None) -> None:
    """Exit 0 when the machine matches the layout, 1 with a readable diff when not."""
    from migctl.engine.assertion import check

    if file is None:
        raise UsageError("say which layout to check: -f LAYOUT.yaml (and -c NAME)")
    models, _ = gpu_models(gpu, None, 0)
    found = layout_file_targets(file, config, models, gpu, False)
    from migctl.engine.files import READ_ONLY_FILES

    diffs = check(session().reader, found.targets, READ_ONLY_FILES)
    diffs.update({g: [] for g in found.resolution.layouts if g not in diffs})  # MIG off, no MIG
    diffs.update(found.unmatched())
    diffs = dict(sorted(diffs.items()))
    matches = bool(diffs) and not any(diffs.values())

    def render() -> None:
        note(found.notes(checking=True))
        for gpu_index, lines in diffs.items():
            if not lines:
                session().console.print(f"GPU {gpu_index}: matches")
            for line in lines:
                session().console.print(f"GPU {gpu_index}: [red]{line}[/red]")
        if not diffs:
            session().console.print("[red]no GPU to compare[/red]")

    emit(
        "Assert",
        {
            "matches": matches,
            "differences": {str(k): v for k, v in diffs.items()},
            "notes": list(found.notes(checking=True)),
        },
        render,
    )
    if not matches:
        raise typer.Exit(EXIT_MISMATCH)


def export_cmd(
    gpu: GpuOption = None,
    fmt: Annotated[str, typer.Option("--format", help="native or mig-parted.")] = "native",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the exported layout.")] = "exported",
) -> None:
    """Write the current layout as a layout file; applying it changes nothing."""
    from migctl.engine.export import current_layouts
    from migctl.inventory import resolve_gpus
    from migctl.layout.bridge import export_text

    if fmt not in {"native", "mig-parted"}:
        raise UsageError(f"unknown format {fmt!r}", hint="native or mig-parted")
    backend = session().reader
    chosen = resolve_gpus(backend, gpu)
    layouts = current_layouts(backend, chosen)
    models = {g: backend.live_model(g) for g in layouts}
    text = export_text(layouts, models, fmt, name)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        session().err.print(f"wrote {out}")
