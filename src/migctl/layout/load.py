"""Read a layout file (native or mig-parted, detected from the document) and pick a layout.

Why this exists: one entry point for the CLI and the engine: ``load_layouts(path)`` gives
every named layout of a file, checked as far as the file alone allows (schema, key paths,
model names and, for entries that select by model, profiles and fit for that model);
``select_layout(file, name)`` is ``-c NAME``. Machine-specific checks happen in
:func:`migctl.layout.resolve`. Reads files; no hardware.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migctl.catalog import Catalog, load_catalog
from migctl.errors import InvalidInputError, NotFoundError
from migctl.layout.migparted import read_mig_parted
from migctl.layout.native import API_VERSION, read_native
from migctl.layout.problems import LineIndex, fail, invalid, join
from migctl.layout.resolve import build_gpu_layout
from migctl.layout.types import NVIDIA_PCI_VENDOR, Layout, LayoutFile, LayoutFormat, LayoutRule
from migctl.layout.yamlio import load_yaml

_NATIVE_KEYS = {"apiVersion", "kind", "layouts"}
_MIG_PARTED_KEYS = {"version", "mig-configs"}


def _kind_of(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:30]!r}"
    return f"a single value ({value!r})"


def _read_document(data: Any, source: str, lines: LineIndex) -> LayoutFile:
    if not isinstance(data, dict):
        fail(
            source,
            "",
            f"the document is {_kind_of(data)}, not a mapping of keys to values",
            f"start the file with 'apiVersion: {API_VERSION}', 'kind: Layouts' and "
            "'layouts:' (or a mig-parted 'version: v1' and 'mig-configs:')",
            line=1,
        )
    keys = set(data)
    if keys & _NATIVE_KEYS:
        return read_native(data, source, lines)
    if keys & _MIG_PARTED_KEYS:
        return read_mig_parted(data, source, lines)
    raise invalid(
        source,
        "",
        "cannot tell the format: neither 'apiVersion' (migctl layouts) nor "
        "'version' + 'mig-configs' (mig-parted)",
        f"start the file with 'apiVersion: {API_VERSION}' and 'kind: Layouts'",
        line=1,
    )


def _check_pci_ids(layout: Layout, rule: LayoutRule, catalog: Catalog) -> None:
    for position, pci in enumerate(rule.selector.pci_ids or ()):
        if pci.vendor != NVIDIA_PCI_VENDOR or catalog.by_pci_device_id(pci.device) is None:
            raise layout.error(
                join(rule.select_path, "pci", position),
                f"no GPU in the catalog has PCI id {pci}",
                'write the device id NVML reports (`migctl list`), e.g. "0x2330" for an '
                "H100 80GB HBM3; or select by model",
            )


def _check_models(file: LayoutFile, catalog: Catalog) -> None:
    """Model names and PCI ids must be known; entries that select by model are checked."""
    for layout in file.layouts:
        for rule in layout.rules:
            _check_pci_ids(layout, rule, catalog)
            for position, name in enumerate(rule.selector.models or ()):
                model = catalog.find(name)
                if model is None:
                    raise layout.error(
                        join(rule.select_path, "model", position),
                        f"unknown GPU model {name!r}",
                        "known models: " + ", ".join(m.key for m in catalog.models),
                    )
                build_gpu_layout(layout, rule, model, f"GPUs of model {name}")


def parse_layouts(
    text: str, *, source: str = "<string>", catalog: Catalog | None = None
) -> LayoutFile:
    """Every layout in ``text`` (YAML); InvalidInputError naming ``source`` when bad."""
    data, lines = load_yaml(text, source)
    file = _read_document(data, source, lines)
    if file.format is LayoutFormat.NATIVE:
        _check_models(file, catalog or load_catalog())
    return file


def load_layouts(path: str | Path, *, catalog: Catalog | None = None) -> LayoutFile:
    """Every layout in the file at ``path``; NotFoundError if it does not exist."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"layout file {file_path} does not exist",
            hint="check the path; examples/ has layout files to start from",
            context={"file": str(file_path)},
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"layout file {file_path} cannot be read: {exc}",
            hint="layout files are UTF-8 YAML text files readable by this user",
            context={"file": str(file_path)},
        ) from exc
    return parse_layouts(text, source=str(file_path), catalog=catalog)


def select_layout(file: LayoutFile, name: str | None = None) -> Layout:
    """The layout called ``name`` (``-c NAME``); the only one when ``name`` is None."""
    top = "layouts" if file.format is LayoutFormat.NATIVE else "mig-configs"
    known = ", ".join(file.names)
    line = file.layouts[0].lines.line_of([top]) if file.layouts else None
    if name is None:
        if len(file.layouts) == 1:
            return file.layouts[0]
        raise invalid(
            file.source,
            top,
            f"the file has {len(file.layouts)} layouts and none was chosen",
            f"choose one with -c NAME: {known}",
            line=line,
        )
    layout = file.get(name)
    if layout is None:
        raise invalid(
            file.source,
            top,
            f"no layout named {name!r}",
            f"layouts in this file: {known}",
            line=line,
        )
    return layout


def load_layout(
    path: str | Path, name: str | None = None, *, catalog: Catalog | None = None
) -> Layout:
    """``select_layout(load_layouts(path), name)``."""
    return select_layout(load_layouts(path, catalog=catalog), name)
