"""Rendering helpers shared by the verbs: the JSON envelope, numbers, tables.

Why this exists: machine output must be stable and versioned (``{"schema": "migctl/v1",
"kind": ...}``), and human output must format memory, unknown values and placements the
same way everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from migctl.cli.session import session
from migctl.model import Placement

if TYPE_CHECKING:
    from rich.table import Table

    from migctl.inventory import ProcessView
    from migctl.leases import Lease

SCHEMA = "migctl/v1"
UNKNOWN = "—"


def emit(kind: str, data: dict[str, Any], render: Callable[[], None]) -> None:
    """Print ``data`` as JSON (``--output json``) or call ``render`` for a human view."""
    current = session()
    if current.json:
        payload = {"schema": SCHEMA, "kind": kind, **data}
        current.console.print_json(json.dumps(payload, default=str), indent=2)
    else:
        render()


def gib(mib: int | None) -> str:
    """nvidia-smi's GiB column: MiB/1024 with two decimals."""
    return UNKNOWN if mib is None else f"{mib / 1024:.2f}"


def value(item: object) -> str:
    return UNKNOWN if item is None else str(item)


def placements_text(placements: Sequence[Placement]) -> str:
    """``{0,2,4}:2`` like ``nvidia-smi mig -lgipp`` (mixed sizes listed one by one)."""
    if not placements:
        return UNKNOWN
    sizes = {p.size for p in placements}
    if len(sizes) == 1:
        return "{" + ",".join(str(p.start) for p in placements) + f"}}:{sizes.pop()}"
    return ",".join(str(p) for p in placements)


def table(*columns: str, title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    result = Table(
        title=title, title_justify="left", header_style="bold", pad_edge=False, box=box.SIMPLE_HEAD
    )
    for column in columns:
        justify: Literal["left", "right"] = "right" if column in NUMERIC else "left"
        result.add_column(column, justify=justify, no_wrap=column in NO_WRAP)
    return result


NO_WRAP = {"UUID", "MIG device", "Placement", "Placements", "Key"}
NUMERIC = {
    "ID",
    "SM",
    "CE",
    "DEC",
    "ENC",
    "JPEG",
    "OFA",
    "Memory GiB",
    "Max",
    "GI",
    "CI",
    "PID",
    "Used MiB",
    "Total MiB",
    "GPU",
    "Free/Total",
}


def print_rows(rendered: Table) -> None:
    session().console.print(rendered)


def note(lines: Iterable[str]) -> None:
    from rich.markup import escape

    for line in lines:
        session().console.print(f"[dim]note:[/dim] {escape(line)}")


def process_text(processes: list[ProcessView]) -> str:
    """``123 alice python (512 MiB); ...`` or ``-``."""
    if not processes:
        return "-"
    parts = []
    for proc in processes:
        command = (proc.command or "?").split()[0].rsplit("/", 1)[-1]
        memory = UNKNOWN if proc.used_memory_mib is None else f"{proc.used_memory_mib} MiB"
        parts.append(f"{proc.pid} {proc.user or '?'} {command} ({memory})")
    return "; ".join(parts)


def lease_text(lease: Lease | None) -> str:
    """``alice (train) #7`` for a MIG device's lease holder; ``-`` when free."""
    if lease is None:
        return "-"
    job = f" ({lease.job})" if lease.job else ""
    return f"{lease.user}{job} #{lease.lease_id}"
