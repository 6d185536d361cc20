"""Layout files: load, validate and export declarative MIG layouts.

Why this exists: a machine's MIG layout belongs in a reviewed file, not in a sequence of
``nvidia-smi`` commands. This package reads the native format (``apiVersion: migctl/v1``,
``kind: Layouts``; reference in docs/layouts.md) and NVIDIA mig-parted configs unchanged
(detected from the document), checks them strictly (every error names the file, line and
key path, with a hint), resolves a layout against a machine into one
:class:`GpuLayout` per GPU, and writes per-GPU layouts back out in either format.

Pure: no backends, no simulator. May import ``migctl.model``, ``migctl.geometry``,
``migctl.catalog``, ``migctl.errors``, ``migctl.planner.placement`` and the pure parts of
``migctl.mps`` (soft shares: the ``shares`` key, :mod:`migctl.layout.shares`). The engine
(apply/assert/export) and the CLI import this package.

Typical use::

    layout = load_layout("inference.yaml", "inference")      # -f FILE -c NAME
    wanted = resolve(layout, [(0, h100), (1, h100)])          # {0: GpuLayout, 1: GpuLayout}
    text = to_native(wanted, {0: h100, 1: h100})
"""

from __future__ import annotations

from migctl.layout.ci_fit import place_cis
from migctl.layout.export import to_mig_parted, to_native
from migctl.layout.load import load_layout, load_layouts, parse_layouts, select_layout
from migctl.layout.resolve import (
    Resolution,
    build_gpu_layout,
    machine_gpus,
    resolve,
    resolve_machine,
)
from migctl.layout.types import (
    GpuLayout,
    InstanceRule,
    Layout,
    LayoutFile,
    LayoutFormat,
    LayoutRule,
    MachineGpu,
    Selector,
    WantedInstance,
)

__all__ = [
    "GpuLayout",
    "InstanceRule",
    "Layout",
    "LayoutFile",
    "LayoutFormat",
    "LayoutRule",
    "MachineGpu",
    "Resolution",
    "Selector",
    "WantedInstance",
    "build_gpu_layout",
    "load_layout",
    "load_layouts",
    "machine_gpus",
    "parse_layouts",
    "place_cis",
    "resolve",
    "resolve_machine",
    "select_layout",
    "to_mig_parted",
    "to_native",
]
