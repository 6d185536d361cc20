"""What a caller asks a daemon to change besides a layout: MIG mode, explicit instances, recovery.

Why this module exists: ``RemoteNode.set_mode``, ``create_gpu_instances`` and the other explicit
changes send these bodies, and the daemon reads them with the same models before it calls its
own ``LocalNode``; one shape, written once. Each is a request (an unknown field is refused) and
bounded before anything is parsed: no GPU holds more than 7 GPU instances or 8 compute
instances per GPU instance, so a list of 64 is already far more than any GPU can take.

Layer: ``migctl.schemas``; imports only the base schema.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from migctl.schemas.base import WireRequest

MAX_ITEMS = 64  # profiles or ids in one request (a GPU holds at most 7 GIs, 8 CIs per GI)
InstanceId = Annotated[int, Field(ge=0, le=1_000_000)]
GpuSelectionText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="GPU indexes, UUIDs or PCI bus ids, comma separated, or 'all'",
        examples=["0,1"],
    ),
]


def _few_items(text: str | None) -> str | None:
    if text is not None and len(text.split(",")) > MAX_ITEMS:
        raise ValueError(f"more than {MAX_ITEMS} comma-separated items")
    return text


class ModeRequest(WireRequest):
    """``POST /v1/mig-mode``: MIG mode on the chosen GPUs (every one checked before any change)."""

    gpus: GpuSelectionText | None = Field(None, description="default: every GPU")
    enabled: bool
    force: bool = Field(
        False,
        description="disabling: destroy the GPUs' instances with the change (without it, "
        "disabling while GPU instances exist is refused: 409 in_use)",
    )


class GpuInstancesRequest(WireRequest):
    """``POST /v1/gpus/{gpu}/gpu-instances``: GIs by profile name or id, ``:START`` optional."""

    profiles: str = Field(min_length=1, max_length=4000, examples=["3g.40gb,1g.10gb:6"])
    with_ci: bool = Field(False, description="also one compute instance spanning each GI")

    _bounded = field_validator("profiles")(_few_items)


class ComputeInstancesRequest(WireRequest):
    """``POST .../gpu-instances/{gi}/compute-instances``: CIs by profile (default: one full CI)."""

    profiles: str | None = Field(None, min_length=1, max_length=4000, examples=["1c.3g.40gb"])

    _bounded = field_validator("profiles")(_few_items)


class InstanceIdsRequest(WireRequest):
    """``POST .../destroy``: the GPU or compute instance ids to destroy (null: all of them)."""

    ids: list[InstanceId] | None = Field(None, max_length=MAX_ITEMS)


class RecoverRequest(WireRequest):
    """``POST /v1/recover``: finish (or, with ``rollback``, undo) an interrupted apply."""

    rollback: bool = False
