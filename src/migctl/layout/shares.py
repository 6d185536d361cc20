"""The ``shares`` key of a layout file: soft shares per GPU (MIG off) or per MIG device.

Why this exists: a layout says what a machine must look like; with soft devices it also
says how each whole GPU or each MIG device is shared out through MPS. This module holds
the schema of that key, in the layout package's strict style: ``migctl.layout.native``
takes it as a field of a GPU entry (``mig: false``) and of an instance entry (each MIG
device the entry creates gets the shares)::

    gpus:
      - select: {index: 0}
        mig: false
        shares: {split: 4}              # 4 x 25%, memory split the same way
      - select: {index: 1}
        mig: true
        instances:
          - profile: 3g.40gb
            count: 2
            shares: [50, 25, 25]        # inside each 3g.40gb MIG device
          - profile: 2g.20gb
            shares: {percent: [50, 50], memory: [8GiB, 8GiB]}

Forms: ``shares: N`` (= ``{split: N}``), ``shares: [50, 25, 25]`` (= ``{percent: [...]}``),
or a mapping with ``split`` or ``percent``, optional ``memory`` (one limit for every
share, or one per share; default: the share's fraction of the parent's memory) and
``oversubscribe: true`` (SM shares may sum past 100%). Percentages are whole numbers, with
or without ``%``. The parent's memory is only known once the layout is resolved against a
machine: :meth:`ShareLayout.resolve` applies the admission rules then
(:mod:`migctl.mps.admission`, a lower layer). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from migctl.errors import UsageError
from migctl.layout.schema_base import StrictModel, custom
from migctl.mps.admission import AdmissionPolicy, check_share_set
from migctl.mps.shares import (
    MAX_PERCENT,
    ParentDevice,
    SoftDevice,
    SoftShare,
    parse_memory_limit,
    parse_share,
)

SHARES_HINT = (
    "write e.g. 'shares: {split: 4}', 'shares: [50, 25, 25]' or "
    "'shares: {percent: [50, 50], memory: [20GiB, 20GiB]}'"
)


def _read(parse: Any, value: Any, what: str, hint: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise custom(f"{value!r} is not {what}", hint)
    try:
        return parse(str(value))
    except UsageError as exc:
        raise custom(exc.message, exc.hint or hint) from exc


class SharesSpec(StrictModel):
    """The ``shares`` value: equal shares (``split``) or explicit percentages."""

    split: Annotated[int, Field(ge=1, le=MAX_PERCENT)] | None = None
    percent: Annotated[list[int], Field(min_length=1)] | None = None
    memory: list[Annotated[int, Field(gt=0)]] | None = None  # MiB, one per share or one for all
    oversubscribe: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"split": value}
        if isinstance(value, list):
            return {"percent": value}
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "layout", "expected a count, a list or a mapping", {"hint": SHARES_HINT}
            )
        return value

    @field_validator("percent", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_read(parse_share, v, "a whole percent", "write e.g. 25 or '25%'") for v in value]

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        return [
            _read(parse_memory_limit, v, "a memory size", "write e.g. 12GiB or 20480MiB")
            for v in items
        ]

    @model_validator(mode="after")
    def _one_form(self) -> SharesSpec:
        if (self.split is None) == (self.percent is None):
            raise custom("give either 'split' or 'percent', not both or neither", SHARES_HINT)
        count = self.count
        if self.memory is not None and len(self.memory) not in (1, count):
            raise custom(
                f"{len(self.memory)} memory limits for {count} shares",
                f"give one limit for every share, or exactly {count}",
            )
        return self

    @property
    def count(self) -> int:
        return self.split if self.split is not None else len(self.percent or ())

    def share_layout(self) -> ShareLayout:
        """The shares this spec asks for, in order (memory None = the default)."""
        percents = self.percent or [MAX_PERCENT // (self.split or 1)] * self.count
        memory: Sequence[int | None] = self.memory or [None]
        if len(memory) == 1:
            memory = list(memory) * self.count
        shares = tuple(SoftShare(p, m) for p, m in zip(percents, memory, strict=True))
        return ShareLayout(shares, self.oversubscribe)


@dataclass(frozen=True, slots=True)
class ShareLayout:
    """The soft shares one parent must have, in order, before the parent is known."""

    shares: tuple[SoftShare, ...]
    oversubscribe: bool = False

    def resolve(self, parent: ParentDevice) -> tuple[tuple[SoftDevice, ...], tuple[str, ...]]:
        """The soft devices on ``parent`` and warnings; InsufficientResourcesError if they
        cannot hold (memory past the parent's; SMs past 100% without ``oversubscribe``)."""
        policy = AdmissionPolicy(oversubscribe=self.oversubscribe)
        return check_share_set(parent, self.shares, policy)

    def describe(self) -> str:
        """``50% + 25% + 25%`` (memory limits in MiB where given)."""
        return " + ".join(s.describe() for s in self.shares)


@dataclass(frozen=True, slots=True)
class MigShares:
    """The shares of every MIG device of one GI profile and CI profile on a GPU."""

    gi_profile: str
    ci_profile: str
    shares: ShareLayout
    key_path: str = ""


@dataclass(frozen=True, slots=True)
class GpuShares:
    """The soft shares a layout asks of one GPU: of the whole GPU (MIG off), or of each MIG
    device of the listed profiles (MIG on). Empty: no soft shares on this GPU."""

    whole: ShareLayout | None = None
    mig: tuple[MigShares, ...] = ()

    @property
    def empty(self) -> bool:
        return self.whole is None and not self.mig

    def for_device(self, gi_profile: str, ci_profile: str) -> ShareLayout | None:
        """The shares of a MIG device of these profiles (None: it gets none)."""
        for entry in self.mig:
            if (entry.gi_profile, entry.ci_profile) == (gi_profile, ci_profile):
                return entry.shares
        return None

    def describe(self) -> str:
        if self.whole is not None:
            return f"the whole GPU: {self.whole.describe()}"
        return "; ".join(f"each {m.ci_profile}: {m.shares.describe()}" for m in self.mig)


NO_SHARES = GpuShares()


def spec_text(layout: ShareLayout) -> str:
    """``{percent: [50, 25, 25], memory: [20480, 10240, 10240]}``: a layout file's form,
    memory in MiB spelled out (so that applying it again makes the same shares)."""
    percents = ", ".join(str(s.percent) for s in layout.shares)
    parts = [f"percent: [{percents}]"]
    if all(s.memory_mib is not None for s in layout.shares):
        parts.append("memory: [" + ", ".join(str(s.memory_mib) for s in layout.shares) + "]")
    if layout.oversubscribe:
        parts.append("oversubscribe: true")
    return "{" + ", ".join(parts) + "}"
