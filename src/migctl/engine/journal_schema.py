"""The apply journal's file format, as pydantic models: a journal of the wrong shape is refused.

Why this exists: the journal crosses processes (the apply that wrote it may have been killed;
``recover``, the next ``apply`` or the daemon reads it), so, as every value that crosses a
process, it has one schema. A journal left half-edited, written by another tool or damaged is
refused with the place of the fault instead of failing somewhere inside a repair.

Only ``engine.journal`` imports this module, and only when a journal exists (pydantic is not
loaded by applies that find none).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from migctl.model import Placement


def _placement(text: str) -> str:
    Placement.parse(text)  # ValueError: not START:SIZE
    return text


PlacementText = Annotated[str, AfterValidator(_placement)]
GpuKey = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}$")]
STRICT = ConfigDict(extra="forbid", strict=True)


class CiForm(BaseModel):
    model_config = STRICT
    profile: str
    placement: PlacementText | None = None


class GiForm(BaseModel):
    model_config = STRICT
    profile: str
    placement: PlacementText | None = None
    cis: list[CiForm] | None = None


class LayoutForm(BaseModel):
    """One GPU's desired layout, as ``engine.codec.desired_to_dict`` writes it."""

    model_config = STRICT
    mig_enabled: bool = True
    gis: list[GiForm] = Field(default_factory=list)


class JournalForm(BaseModel):
    """The journal file: what ``engine.journal.JournalEntry.to_dict`` writes."""

    model_config = STRICT
    machine: str
    pid: int = Field(gt=0)
    started_at: str
    target: dict[GpuKey, LayoutForm]
    checkpoint: dict[GpuKey, LayoutForm]
    ops: list[dict[str, Any]]
    done: int = Field(ge=0)
    status: Literal["running", "rolling-back"] = "running"
    created_gis: dict[str, int] = Field(default_factory=dict)
    schema_version: Literal[1] = Field(alias="schema")

    @model_validator(mode="after")
    def _progress_within_the_plan(self) -> JournalForm:
        if self.done > len(self.ops):
            raise ValueError(f"done is {self.done}, but there are only {len(self.ops)} operations")
        return self


def parse_journal(text: bytes) -> dict[str, Any]:
    """The journal's fields, validated; ValueError names the first faults by their place."""
    try:
        form = JournalForm.model_validate_json(text)
    except ValidationError as exc:
        faults = [
            f"{'.'.join(str(part) for part in error['loc']) or 'the file'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        more = f" (and {len(faults) - 3} more)" if len(faults) > 3 else ""
        raise ValueError("; ".join(faults[:3]) + more) from None
    return form.model_dump(mode="json", by_alias=True)
