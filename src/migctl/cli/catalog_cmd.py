"""``migctl catalog``: the GPU models migctl knows, offline; capture and check live GPUs.

Why this exists: "which profiles does an H200 have, and where can a 3g go?" must be
answerable without the GPU, with each model's trust level in plain sight; and a GPU the
catalog does not know yet must work on day one (``catalog capture``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from migctl.cli.global_options import first_word
from migctl.cli.output import emit, gib, note, placements_text, print_rows, table, value
from migctl.cli.session import session
from migctl.errors import EXIT_MISMATCH, InvalidInputError
from migctl.model import GpuModel

if TYPE_CHECKING:
    from migctl.schemas.catalog import CatalogCheckOut, CatalogModelOut, CatalogOut

TRUST_TEXT = {
    "verified": "verified against a real NVML capture",
    "transcript": "from real nvidia-smi transcripts",
    "documented": "from NVIDIA documentation, not measured",
    "partial": "partly documented: some values unknown",
    "captured": "captured from a live GPU by migctl",
}


class _CatalogGroup(TyperGroup):
    """``migctl catalog MODEL`` means ``migctl catalog show MODEL``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # vendored click Context
        first = first_word(args)  # global options may come first: catalog -o json h100
        if first is not None and args[first] not in self.commands:
            args = [*args[:first], "show", *args[first:]]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_CatalogGroup,
    help="GPU models and their MIG geometry (offline). `migctl catalog MODEL` shows one.",
    invoke_without_command=True,
)


@app.callback()
def catalog_list(ctx: typer.Context) -> None:
    """List the GPUs migctl knows: MIG-capable first, with their trust level."""
    if ctx.invoked_subcommand is not None:
        return
    models = session().catalog.models

    def render() -> None:
        rows = table("Key", "Name", "Max GIs", "Slices", "Trust", "Placements", "PCI ids")
        for m in (m for m in models if m.mig_capable):
            rows.add_row(
                m.key,
                m.name,
                value(m.max_gpu_instances),
                value(m.memory_slices),
                m.trust.value,
                _placement_state(m),
                " ".join(f"0x{p:04X}" for p in m.pci_device_ids),
            )
        print_rows(rows)
        others = ", ".join(m.name for m in models if not m.mig_capable)
        note(
            [
                f"known GPUs without MIG: {others}",
                "trust: " + "; ".join(f"{k} = {v}" for k, v in TRUST_TEXT.items()),
            ]
        )

    def document() -> CatalogOut:
        from migctl.schemas.catalog import CatalogOut, ModelSummaryOut

        return CatalogOut(models=[ModelSummaryOut.of(m) for m in models])

    emit("Catalog", document, render)


def _placement_state(model: GpuModel) -> str:
    if model.placements_verified:
        return "verified"
    if model.plannable:
        return "UNVERIFIED"
    return "unknown"


@app.command("show")
def show(
    model_name: Annotated[str, typer.Argument(metavar="MODEL", help="Key, alias, name or PCI id.")],
) -> None:
    """GI profiles (-lgip columns), placements (-lgipp) and CI profiles of one model."""
    model = session().catalog.get_mig(model_name)

    def render() -> None:
        console = session().console
        console.print(
            f"[bold]{model.name}[/bold]  key {model.key}  trust: {model.trust.value} "
            f"({TRUST_TEXT[model.trust.value]})"
        )
        rows = table(
            "Name", "ID", "Max", "Memory GiB", "SM", "DEC", "ENC", "CE", "JPEG", "OFA", "Placements"
        )
        for p in model.gi_profiles:
            e = p.engines
            marker = "" if p.placements_verified else " (unverified)"
            rows.add_row(
                f"MIG {p.name}",
                value(p.id),
                str(p.max_instances),
                gib(p.memory_mib),
                value(p.sm_count),
                value(e.dec),
                value(e.enc),
                value(e.ce),
                value(e.jpeg),
                value(e.ofa),
                placements_text(p.placements) + marker,
            )
        print_rows(rows)
        cis = table("GI profile", "CI profile", "ID", "Max", "SM", "Placements", "Source")
        for c in model.ci_profiles:
            cis.add_row(
                c.gi_profile,
                c.name + ("*" if c.is_default else ""),
                str(c.nvml_index),
                str(c.max_instances),
                value(c.sm_count),
                placements_text(c.placements),
                "derived" if c.derived else "published",
            )
        print_rows(cis)
        note(_model_notes(model))

    def document() -> CatalogModelOut:
        from migctl.schemas.catalog import CatalogModelOut

        return CatalogModelOut.of(model)

    emit("GpuModel", document, render)


def _model_notes(model: GpuModel) -> list[str]:
    lines = [f"confidence: {model.confidence}"] if model.confidence else []
    if not model.placements_verified:
        lines.append(
            "placements marked (unverified) are the sibling GPUs' pattern, "
            "not published for this GPU"
        )
    if any(c.derived for c in model.ci_profiles):
        lines.append(
            "CI profiles marked derived follow the A100 pattern; "
            "they are not published for this GPU"
        )
    from migctl.catalog.complete import complete_model

    derived = complete_model(model, session().catalog.models).derivations
    if derived:
        lines.append(
            f"the simulator derives the {len(derived)} value(s) unknown here from this model's "
            "geometry; `migctl sim show` on a machine with it lists them"
        )
    lines.append("* = default compute instance; — = unknown")
    if model.driver_min:
        lines.append(f"driver: {model.driver_min}")
    return lines


@app.command("capture")
def capture(
    gpu: Annotated[int, typer.Option("--gpu", "-i", help="The GPU to read.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-f", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a live GPU's MIG geometry in the catalog's format (works with MIG mode off)."""
    from migctl.catalog import model_to_dict

    model = session().node.models(str(gpu)).get(gpu)
    if model is None or not model.mig_capable:
        raise InvalidInputError(
            f"GPU {gpu} reports no MIG profiles: nothing to capture",
            hint="see the GPUs with MIG in `migctl list` (MIG on or off; n/a: none)",
        )
    document: dict[str, Any] = {"schema": 1, "models": [model_to_dict(model)]}
    text = json.dumps(document, indent=1) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    session().err.print(
        f"wrote {model.name} ({len(model.gi_profiles)} profiles) to {out}; "
        f"use it with MIGCTL_CATALOG={out} or as a model in a simulator machine file"
    )


@app.command("check")
def check(
    gpu: Annotated[
        str | None, typer.Option("--gpu", "-i", help="GPUs to check; default all.")
    ] = None,
) -> None:
    """Compare each live GPU with the catalog; exit 1 when they differ."""
    from migctl.catalog.compare import compare_models
    from migctl.schemas.catalog import CatalogCheckGpuOut

    node = session().node
    views = node.inventory(gpu).gpus
    live = node.models(gpu)
    results: list[CatalogCheckGpuOut] = []
    for view in views:
        index, known, model = view.info.index, view.model, live.get(view.info.index)
        status = "no-mig" if model is None else ("unknown" if known is None else "checked")
        results.append(
            CatalogCheckGpuOut(
                gpu_index=index,
                name=model.nvidia_smi_name if model is not None else view.info.name,
                catalog_model=known.key if known else None,
                status=status,
                differences=compare_models(model, known) if model and known else [],
            )
        )

    def render() -> None:
        for r in results:
            if r.status == "unknown":
                line = "not in the catalog: capture it with `migctl catalog capture`"
            elif r.status == "no-mig":
                line = "no MIG"
            else:
                count = len(r.differences)
                line = f"{count} difference(s)" if count else "matches the catalog"
            session().console.print(f"GPU {r.gpu_index} ({r.name}): {line}")
            for d in r.differences:
                session().console.print(f"  - {d}")

    def document() -> CatalogCheckOut:
        from migctl.schemas.catalog import CatalogCheckOut

        return CatalogCheckOut(gpus=results)

    emit("CatalogCheck", document, render)
    if any(r.differences or r.status == "unknown" for r in results):
        raise typer.Exit(EXIT_MISMATCH)
