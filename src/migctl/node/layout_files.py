"""Layout files for ``plan``, ``apply`` and ``check``: resolved against the machine.

Why this exists: a layout file is resolved against the whole machine (its selectors may
name GPUs outside ``-i``, which is fine), but only the GPUs ``-i`` chose are checked,
planned and compared, so ``apply -f default.yaml -c all-1g.5gb -i 0,1`` on a mixed node
is not refused for GPU 2's sake. The machine's real PCI ids (and subsystem, when the
driver reports it) are used, as mig-parted uses them for ``device-filter``. A mig-parted
config is judged as mig-parted judges it: every GPU it leaves out (or, with ``devices:
all``, passes over for lack of MIG) fails ``assert``, and a GPU that already has the
compute-instance counts asked for is left as it is. A native layout leaves GPUs it does
not select alone, but an ``assert`` that compares no GPU at all fails, naming them.

Used by ``node.targets`` only (so the daemon judges a file exactly as the CLI does); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migctl.catalog import Catalog
    from migctl.layout import Layout, MachineGpu, Resolution
    from migctl.model import GpuModel
    from migctl.planner import DesiredLayout


@dataclass(frozen=True)
class FileTargets:
    """A layout file resolved against the machine: targets and the GPUs left aside."""

    layout: Layout
    resolution: Resolution
    targets: dict[int, DesiredLayout]
    models: dict[int, GpuModel]  # every GPU asked about (``-i``), MIG or not
    machine: dict[int, GpuModel]  # every GPU of the machine

    @property
    def mig_parted(self) -> bool:
        from migctl.layout import LayoutFormat

        return self.layout.format is LayoutFormat.MIG_PARTED

    def notes(self, *, checking: bool = False) -> tuple[str, ...]:
        """What the file names that this machine lacks, and the GPUs it leaves alone (for
        ``assert``, ``checking``: only those it does not compare and does not fail on)."""
        found = []
        if self.resolution.absent:
            missing = ", ".join(map(str, self.resolution.absent))
            found.append(
                f"{self.layout.source}: {self.layout.key_path} names GPU {missing}, which this "
                f"machine does not have (its GPUs: {_indexes(self.machine)})"
            )
        left = self.resolution.unselected + self.resolution.skipped
        if left and not checking:
            found.append(
                f"{self.layout.key_path} leaves GPU {', '.join(map(str, left))} as it is "
                "(no entry for it" + (", or no MIG)" if self.resolution.skipped else ")")
            )
        elif left and not self.mig_parted and self.resolution.layouts:
            found.append(
                f"GPU {', '.join(map(str, left))}: not in {self.layout.key_path}, not compared"
            )
        return tuple(found)

    def unmatched(self) -> dict[int, list[str]]:
        """Per GPU, why ``assert`` fails for a GPU the layout leaves aside."""
        name = f"{self.layout.key_path}"
        found: dict[int, list[str]] = {}
        if self.mig_parted:
            for gpu in self.resolution.unselected:
                found[gpu] = [f"no entry of {name} selects this GPU ({self._label(gpu)})"]
            for gpu in self.resolution.skipped:
                found[gpu] = [
                    f"{self._label(gpu)} has no MIG, and the 'devices: all' entry of {name} "
                    "that selects it turns MIG on (mig-parted's assert fails here too)"
                ]
        elif not self.resolution.layouts:
            for gpu in self.resolution.unselected:
                found[gpu] = [f"{name} selects none of the GPUs checked ({self._label(gpu)})"]
        return found

    def _label(self, gpu: int) -> str:
        return self.models[gpu].name


def _indexes(models: dict[int, GpuModel]) -> str:
    return ", ".join(map(str, sorted(models))) or "none"


def file_targets(
    layout: Layout, machine: list[MachineGpu], chosen: dict[int, GpuModel]
) -> FileTargets:
    """``layout`` resolved against ``machine``, for the GPUs ``chosen`` (``-i``)."""
    from migctl.layout import resolve_machine
    from migctl.layout.bridge import desired_targets

    whole = {gpu.index: gpu.model for gpu in machine}
    resolution = resolve_machine(layout, machine, only=set(chosen))
    targets = desired_targets(resolution.layouts, chosen)
    return FileTargets(layout, resolution, targets, chosen, whole)


def parse_layout(text: str, config: str | None, source: str, catalog: Catalog) -> Layout:
    """The named layout of a document (native or mig-parted)."""
    from migctl.layout.load import parse_layouts, select_layout

    return select_layout(parse_layouts(text, source=source, catalog=catalog), config)
