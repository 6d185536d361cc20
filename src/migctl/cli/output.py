"""Rendering helpers shared by the verbs: the JSON documents, numbers, tables.

Why this exists: machine output must be stable and versioned: :func:`emit` prints a
``migctl.schemas`` model in the envelope ``{"schema": "migctl/v2", "kind": ...}`` (the model is
built, and pydantic imported, only for ``--output json``); human output must format memory,
unknown values and placements the same way everywhere. Text from outside migctl (job and user
names, process names and command lines, hook output) reaches a terminal only through
:func:`outside`: escaped (``migctl.untrusted``) and as a Rich ``Text``, so neither terminal escape sequences nor Rich
markup in it take effect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from migctl.cli.session import session
from migctl.untrusted import escape

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.table import Table
    from rich.text import Text

    from migctl.leases import Lease
    from migctl.model import Placement, ProcessView

UNKNOWN = "—"


def emit(kind: str, document: Callable[[], BaseModel], render: Callable[[], None]) -> None:
    """Print ``document()`` as JSON (``--output json``) or call ``render`` for a human view."""
    current = session()
    if current.json:
        print_document(kind, document())
    else:
        render()


def print_document(kind: str, document: BaseModel) -> None:
    """One ``--output json`` document: the model in the versioned envelope."""
    from migctl.schemas.base import envelope

    session().console.print_json(json.dumps(envelope(kind, document)), indent=2)


def me() -> str:
    """The user name this process runs as (``mine`` in lease documents)."""
    from migctl.leases import LeaseOwner

    return LeaseOwner.current().user


def gib(mib: int | None) -> str:
    """nvidia-smi's GiB column: MiB/1024 with two decimals."""
    return UNKNOWN if mib is None else f"{mib / 1024:.2f}"


def value(item: object) -> str:
    return UNKNOWN if item is None else str(item)


def outside(item: object) -> Text:
    """Text from outside migctl for a table cell or a print: escaped, never read as markup."""
    from rich.text import Text

    return Text(UNKNOWN if item is None else escape(str(item)))


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


def process_text(processes: list[ProcessView]) -> Text:
    """``123 alice python (512 MiB); ...`` or ``-`` (user and command escaped)."""
    if not processes:
        return outside("-")
    parts = []
    for proc in processes:
        words = (proc.command or "?").split()
        command = (words[0] if words else "?").rsplit("/", 1)[-1]
        memory = UNKNOWN if proc.used_memory_mib is None else f"{proc.used_memory_mib} MiB"
        parts.append(f"{proc.pid} {proc.user or '?'} {command} ({memory})")
    return outside("; ".join(parts))


def lease_text(lease: Lease | None) -> Text:
    """``alice (train) #7`` for a MIG device's lease holder; ``-`` when free (escaped)."""
    if lease is None:
        return outside("-")
    job = f" ({lease.job})" if lease.job else ""
    return outside(f"{lease.user}{job} #{lease.lease_id}")
