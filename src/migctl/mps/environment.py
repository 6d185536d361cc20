"""Where a parent's MPS control daemon keeps its pipes and logs, and a client's environment.

Why this exists: migctl runs one MPS control daemon per parent (a GPU with MIG off, or one
MIG device), each with private pipe and log directories under a state directory the
caller passes in, so daemons never meet each other (or a system-wide one in
``/tmp/nvidia-mps``). A client joins a soft device through its environment alone:

* ``CUDA_VISIBLE_DEVICES``: the parent's UUID (``GPU-...`` or ``MIG-...``);
* ``CUDA_MPS_PIPE_DIRECTORY``: the parent daemon's pipe directory;
* ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``: the SM share (whole percent);
* ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``: ``0=<MiB>M``, device ordinal 0 being the one
  device the client sees (NVIDIA's MPS documentation: a comma-separated list of
  ``<device ordinal>=<limit>`` with a unit such as ``M`` or ``G``, e.g. ``0=1G``).

Pure, except :meth:`MpsPaths.create`. Anyone above ``migctl.mps.shares`` may import it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from migctl.errors import UsageError
from migctl.mps.shares import SoftDevice, parent_kind

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
PIPE_DIRECTORY = "CUDA_MPS_PIPE_DIRECTORY"
LOG_DIRECTORY = "CUDA_MPS_LOG_DIRECTORY"
THREAD_PERCENTAGE = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
PINNED_MEMORY_LIMIT = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
CLIENT_VARIABLES = (CUDA_VISIBLE_DEVICES, PIPE_DIRECTORY, THREAD_PERCENTAGE, PINNED_MEMORY_LIMIT)
PARENT_FILE = "parent"  # the parent's UUID, so a crashed daemon's directory can be traced
# sun_path holds 108 bytes; the daemon's socket is <pipe dir>/control (plus server pipes)
MAX_PIPE_DIR_BYTES = 90


@dataclass(frozen=True, slots=True)
class MpsPaths:
    """One parent's private MPS directories."""

    root: Path
    parent_uuid: str

    @property
    def pipe_dir(self) -> Path:
        return self.root / "pipe"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def create(self, mode: int = 0o755) -> None:
        """Make both directories (``mode``: clients of other users need to reach the pipes)."""
        for path in (self.pipe_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True, mode=mode)
        marker = self.root / PARENT_FILE
        if not marker.exists():
            marker.write_text(self.parent_uuid + "\n", encoding="utf-8")


def mps_paths(state_dir: Path, parent_uuid: str) -> MpsPaths:
    """``<state_dir>/mps/<gpu|mig>-<12 hex of the UUID's hash>``: short and stable.

    UsageError when the state directory is so deep that the daemon's Unix socket path
    would pass the kernel's limit.
    """
    kind = parent_kind(parent_uuid)
    digest = hashlib.sha256(parent_uuid.encode()).hexdigest()[:12]
    paths = MpsPaths(Path(state_dir) / "mps" / f"{kind.value}-{digest}", parent_uuid)
    if len(os.fsencode(paths.pipe_dir)) > MAX_PIPE_DIR_BYTES:
        raise UsageError(
            f"MPS pipe directory {paths.pipe_dir} is too long for a Unix socket path",
            hint=f"choose a state directory of at most {MAX_PIPE_DIR_BYTES - 30} characters",
        )
    return paths


def pinned_limit_value(memory_limit_mib: int) -> str:
    """``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` for the client's only device: ``0=12288M``."""
    if memory_limit_mib <= 0:
        raise UsageError(f"a pinned memory limit must be above 0 MiB, got {memory_limit_mib}")
    return f"0={memory_limit_mib}M"


def client_environment(device: SoftDevice, paths: MpsPaths) -> dict[str, str]:
    """The variables that put a CUDA program into ``device`` (add them to its environment)."""
    if paths.parent_uuid != device.parent.uuid:
        raise UsageError(
            f"MPS directories of {paths.parent_uuid} given for a share of {device.parent.uuid}"
        )
    return {
        CUDA_VISIBLE_DEVICES: device.parent.uuid,
        PIPE_DIRECTORY: str(paths.pipe_dir),
        THREAD_PERCENTAGE: str(device.percent),
        PINNED_MEMORY_LIMIT: pinned_limit_value(device.memory_limit_mib),
    }


def daemon_environment(paths: MpsPaths, base: Mapping[str, str]) -> dict[str, str]:
    """The control daemon's environment: ``base`` (minus client limits), its parent, its dirs.

    A client's limits in ``base`` are dropped: set on the control daemon, they would act
    as defaults for every client it serves.
    """
    env = {k: v for k, v in base.items() if k not in (THREAD_PERCENTAGE, PINNED_MEMORY_LIMIT)}
    env[CUDA_VISIBLE_DEVICES] = paths.parent_uuid
    env[PIPE_DIRECTORY] = str(paths.pipe_dir)
    env[LOG_DIRECTORY] = str(paths.log_dir)
    return env
