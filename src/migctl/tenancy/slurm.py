"""Slurm: ``gres.conf`` lines for the MIG devices and the matching ``--gres`` requests.

Why this exists: Slurm (21.08+) schedules MIG devices as ``gpu`` GRES. Its documentation
(gres.html, "MIG Management") describes two ways to declare them on a node:

* ``AutoDetect=nvml`` in ``gres.conf``: slurmd finds the MIG devices itself; ``slurm.conf``
  declares ``Gres=gpu:<type>:<count>``, where the type must be a substring of the MIG profile
  string slurmd reports (which contains the profile name, e.g. ``..._1g.10gb``);
* explicit lines, one per MIG device: ``Name=gpu Type=<profile>
  MultipleFiles=/dev/nvidia<minor>,/dev/nvidia-caps/nvidia-cap<GI>,/dev/nvidia-caps/nvidia-cap<CI>``
  (``MultipleFiles``, not ``File``: one MIG device needs all three device files).

The explicit form needs the driver's device numbers (see :mod:`.devnodes`); where they are
unknown (a simulated machine) only the AutoDetect form can be written. Jobs then ask with
``--gres=gpu:<profile>:<count>``. Note that a type is matched as a substring, so ``1g.10gb``
also matches ``1g.10gb+me`` devices. Importers: ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InvalidStateError
from migctl.tenancy.devices import ExportedDevice


class GresForm(enum.StrEnum):
    AUTO = "auto"  # explicit when every device file is known, else AutoDetect
    FILES = "files"
    AUTODETECT = "autodetect"


@dataclass(frozen=True)
class GresConfig:
    form: GresForm  # files or autodetect (never auto)
    gres_conf: list[str]
    slurm_conf: list[str]
    requests: list[str]
    notes: list[str]

    def text(self) -> str:
        sections = [
            ("gres.conf on this node", self.gres_conf),
            ("slurm.conf (this node's line)", self.slurm_conf),
            ("job requests", self.requests),
        ]
        lines = [f"# {note}" for note in self.notes]
        for title, body in sections:
            lines += ["", f"# --- {title} ---", *body]
        return "\n".join(lines).lstrip("\n") + "\n"


def counts_by_type(devices: Sequence[ExportedDevice]) -> dict[str, int]:
    """MIG profile (the GRES type) -> number of devices, sorted by name."""
    counts = Counter(exported.device.ci_profile for exported in devices)
    return dict(sorted(counts.items()))


def explicit_line(exported: ExportedDevice) -> str:
    files = ",".join(exported.nodes.paths)
    return f"Name=gpu Type={exported.device.ci_profile} MultipleFiles={files}"


def gres_config(devices: Sequence[ExportedDevice], node: str, form: GresForm) -> GresConfig:
    """``gres.conf`` / ``slurm.conf`` / request lines for ``devices`` on host ``node``."""
    if not devices:
        raise InvalidStateError(
            "there are no MIG devices to declare to Slurm",
            hint="create MIG instances first (migctl gi create ... -C)",
        )
    known = all(exported.nodes.complete for exported in devices)
    notes: list[str] = []
    if form == GresForm.FILES and not known:
        raise InvalidStateError(
            "the device files of some MIG devices are unknown (no driver procfs here)",
            hint="use --form autodetect, or run on the GPU node itself",
        )
    chosen = form
    if form == GresForm.AUTO:
        chosen = GresForm.FILES if known else GresForm.AUTODETECT
    if chosen == GresForm.AUTODETECT and not known:
        notes.append("device files unknown here, so slurmd must detect the MIG devices (NVML)")
    counts = counts_by_type(devices)
    if chosen == GresForm.FILES:
        gres_conf = [explicit_line(exported) for exported in devices]
    else:
        gres_conf = ["AutoDetect=nvml"]
    gres = ",".join(f"gpu:{kind}:{count}" for kind, count in counts.items())
    slurm_conf = ["GresTypes=gpu", f"NodeName={node} Gres={gres}"]
    requests = [f"#SBATCH --gres=gpu:{kind}:1" for kind in counts]
    requests += [f"srun --gres=gpu:{kind}:1 nvidia-smi -L" for kind in counts]
    return GresConfig(chosen, gres_conf, slurm_conf, requests, notes)
