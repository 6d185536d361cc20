"""The common pieces of every wire schema: the base model, placements, the JSON envelope.

Why this module exists: every schema must parse a newer daemon's answers (unknown fields are
ignored when reading), every request body must refuse what it does not know (the daemon answers
422 naming the field), and every ``--output json`` document prints the same envelope
(``{"schema": "migctl/v2", "kind": ...}``). ``migctl/v2``: the documents are the schemas' own
shapes (a MIG device says ``gpu_index`` as the REST API does, a lease is the whole ``LeaseOut``);
docs/architecture.md ("JSON output") lists what changed from ``migctl/v1``. Only
``migctl.schemas`` modules and the front ends import it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from migctl.model import Placement

SCHEMA = "migctl/v2"  # the CLI's JSON documents; a renamed or removed field bumps it


class Wire(BaseModel):
    """Base of every wire schema: frozen; unknown fields from a newer peer are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class WireRequest(Wire):
    """Base of every request body a client sends: as :class:`Wire`, but an unknown field is
    refused (a typo such as ``ttl`` for ``ttl_seconds`` must never be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PlacementOut(Wire):
    """``start`` and ``size`` in slices (memory slices for a GI, compute slices for a CI)."""

    start: int
    size: int

    @classmethod
    def of(cls, placement: Placement) -> PlacementOut:
        return cls(start=placement.start, size=placement.size)

    def value(self) -> Placement:
        return Placement(self.start, self.size)


def envelope(kind: str, body: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """The versioned JSON document the CLI prints for ``kind``."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return {"schema": SCHEMA, "kind": kind, **data}


def dumps(kind: str, body: BaseModel | dict[str, Any]) -> str:
    """:func:`envelope` as indented JSON text."""
    return json.dumps(envelope(kind, body), indent=2)
