"""The native layout format (``apiVersion: migctl/v1``, ``kind: Layouts``): schema and reader.

Why this exists: users describe the MIG layout of a machine declaratively, with named
layouts, GPU selectors, profile counts, optional fixed placements and compute instance
layouts (docs/layouts.md has the reference). The pydantic models check shape and types;
:func:`read_native` then checks what spans keys (placements vs counts, ``mig: false`` with
instances) and produces format-neutral :class:`~migctl.layout.types.Layout` values.
Model-specific checks (profile names, fit) happen in :mod:`migctl.layout.resolve`.
Used by :mod:`migctl.layout.load`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator

from migctl.layout.problems import LineIndex, fail, join
from migctl.layout.schema_base import StrictModel, custom, validate
from migctl.layout.shares import SharesSpec
from migctl.layout.types import (
    InstanceRule,
    Layout,
    LayoutFile,
    LayoutFormat,
    LayoutRule,
    Selector,
    parse_pci_text,
)
from migctl.model import normalize_profile_name

API_VERSION = "migctl/v1"
KIND = "Layouts"
LAYOUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NonNegative = Annotated[int, Field(ge=0)]


def _one_or_many(value: Any, scalar: type | tuple[type, ...]) -> Any:
    if isinstance(value, scalar) and not isinstance(value, bool):
        return [value]
    return value


class SelectSpec(StrictModel):
    """``{index: ..., model: ..., pci: ...}``: every given key must match (AND)."""

    index: list[NonNegative] | None = None
    model: list[Annotated[str, Field(min_length=1)]] | None = None
    pci: list[str] | None = None

    @field_validator("index", mode="before")
    @classmethod
    def _index(cls, value: Any) -> Any:
        return _one_or_many(value, int)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _one_or_many(value, str)

    @field_validator("pci", mode="before")
    @classmethod
    def _pci(cls, value: Any) -> Any:
        items = _one_or_many(value, (str, int))
        if not isinstance(items, list):
            return items
        texts = [f"0x{item:04X}" if isinstance(item, int) and item >= 0 else item for item in items]
        for text in texts:
            if isinstance(text, str) and parse_pci_text(text) is None:
                raise custom(
                    f"{text!r} is not a PCI device id",
                    'write 4 hex digits ("0x2330") or device+vendor ("0x233010DE")',
                )
        return texts


class InstanceSpec(StrictModel):
    profile: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(ge=1)] = 1
    placement: list[NonNegative] | None = None
    compute: list[Annotated[str, Field(min_length=1)]] | None = None
    shares: SharesSpec | None = None

    @field_validator("placement", mode="before")
    @classmethod
    def _placement(cls, value: Any) -> Any:
        return _one_or_many(value, int)


class GpuEntrySpec(StrictModel):
    select: SelectSpec
    mig: bool
    optional: bool = False
    instances: list[InstanceSpec] = Field(default_factory=list)
    shares: SharesSpec | None = None

    @field_validator("select", mode="before")
    @classmethod
    def _select(cls, value: Any) -> Any:
        if value == "all":
            return {}
        if isinstance(value, str):
            raise custom(
                f"unknown selector {value!r}",
                "write 'select: all' or a mapping such as {index: [0, 1]}, {model: h100}",
            )
        if isinstance(value, dict) and not value:
            raise custom("an empty selector selects nothing", "write 'select: all' for every GPU")
        return value


class LayoutSpec(StrictModel):
    description: str | None = None
    gpus: Annotated[list[GpuEntrySpec], Field(min_length=1)]


class NativeDocument(StrictModel):
    apiVersion: str
    kind: str
    layouts: Annotated[dict[str, LayoutSpec], Field(min_length=1)]


def _selector(spec: SelectSpec) -> Selector:
    pci = None
    if spec.pci is not None:
        pci = tuple(p for p in (parse_pci_text(text) for text in spec.pci) if p is not None)
    return Selector(
        indexes=tuple(sorted(set(spec.index))) if spec.index is not None else None,
        models=tuple(spec.model) if spec.model is not None else None,
        pci_ids=pci,
    )


def _instance(source: str, path: str, spec: InstanceSpec, lines: LineIndex) -> InstanceRule:
    starts = tuple(spec.placement) if spec.placement is not None else None
    if starts is not None:
        where_path = join(path, "placement")
        if len(starts) != spec.count:
            fail(
                source,
                where_path,
                f"{len(starts)} start slice(s) given for count {spec.count}",
                f"give exactly {spec.count} start slices, or drop 'placement' to let migctl "
                "place the instances",
                line=lines.line_of_path(where_path),
            )
        if len(set(starts)) != len(starts):
            fail(
                source,
                where_path,
                f"the same start slice appears twice in {list(starts)}",
                "two instances cannot start at the same memory slice; give distinct starts",
                line=lines.line_of_path(where_path),
            )
    compute = None
    if spec.compute is not None:
        compute = tuple(normalize_profile_name(name) for name in spec.compute)
    return InstanceRule(
        key_path=path,
        profile=normalize_profile_name(spec.profile),
        profile_path=join(path, "profile"),
        count=spec.count,
        starts=starts,
        compute=compute,
        shares=None if spec.shares is None else spec.shares.share_layout(),
    )


def _rule(source: str, path: str, spec: GpuEntrySpec, lines: LineIndex) -> LayoutRule:
    if not spec.mig and spec.instances:
        where_path = join(path, "instances")
        fail(
            source,
            where_path,
            "instances are listed but 'mig' is false",
            "set 'mig: true' to create instances, or remove 'instances' to turn MIG off",
            line=lines.line_of_path(where_path),
        )
    if spec.mig and spec.shares is not None:
        where_path = join(path, "shares")
        fail(
            source,
            where_path,
            "'shares' of a whole GPU need 'mig: false' (with MIG on, CUDA sees MIG devices)",
            "set 'mig: false' to share the whole GPU through MPS, or put 'shares' on an "
            "instance entry to share each of its MIG devices",
            line=lines.line_of_path(where_path),
        )
    instances = tuple(
        _instance(source, join(path, "instances", position), item, lines)
        for position, item in enumerate(spec.instances)
    )
    return LayoutRule(
        key_path=path,
        selector=_selector(spec.select),
        mig_enabled=spec.mig,
        instances=instances,
        optional=spec.optional,
        mig_path=join(path, "mig"),
        instances_path=join(path, "instances"),
        select_path=join(path, "select"),
        shares=None if spec.shares is None else spec.shares.share_layout(),
    )


def _check_header(document: NativeDocument, source: str, lines: LineIndex) -> None:
    if document.apiVersion != API_VERSION:
        fail(
            source,
            "apiVersion",
            f"unsupported apiVersion {document.apiVersion!r}",
            f"this migctl reads 'apiVersion: {API_VERSION}'",
            line=lines.line_of(["apiVersion"]),
        )
    if document.kind != KIND:
        fail(
            source,
            "kind",
            f"unsupported kind {document.kind!r}",
            f"write 'kind: {KIND}'",
            line=lines.line_of(["kind"]),
        )


def read_native(data: Any, source: str, lines: LineIndex) -> LayoutFile:
    """A native document (already parsed YAML) as a LayoutFile; InvalidInputError if bad."""
    document = validate(NativeDocument, data, source, lines)
    _check_header(document, source, lines)
    layouts: list[Layout] = []
    for name, spec in document.layouts.items():
        path = join("layouts", name)
        if not LAYOUT_NAME.fullmatch(name):
            fail(
                source,
                path,
                f"layout name {name!r} is not a plain name",
                "use letters, digits, '.', '_' and '-' (it is typed after -c)",
                line=lines.line_of_path(path),
            )
        rules = tuple(
            _rule(source, join(path, "gpus", position), entry, lines)
            for position, entry in enumerate(spec.gpus)
        )
        layouts.append(
            Layout(name, source, LayoutFormat.NATIVE, rules, spec.description, path, lines)
        )
    return LayoutFile(source, LayoutFormat.NATIVE, tuple(layouts))
