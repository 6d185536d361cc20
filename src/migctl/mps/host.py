"""How one machine runs its MPS control daemons: which program, where, with what environment.

Why this exists: soft leases, ``migctl run``, layouts with ``shares`` and the daemon all start,
query and stop the same per-parent MPS control daemons; they must agree on the program
(``nvidia-cuda-mps-control``, or the simulator's stand-in on a simulated machine), on the state
directory under which each parent's private pipe and log directories live, and on the extra
environment the program needs (the simulator's device size). :class:`MpsHost` is that
agreement, built once per node (``migctl.node.soft.mps_host``) and passed down.

The compute mode is never changed unless ``compute_mode`` is given (an administrator's choice:
``EXCLUSIVE_PROCESS`` makes every CUDA process of the GPU go through MPS; it needs the real
driver, through NVML). Pure values; :meth:`MpsHost.control` makes the controller.
Importers: the layers that own soft devices (tenancy, engine, node).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migctl.mps.control import CONTROL_PROGRAM, ComputeModeSetter, MpsControl, known_daemons
from migctl.mps.environment import MpsPaths, mps_paths
from migctl.mps.shares import ParentDevice

ParentEnvironment = Callable[[ParentDevice], Mapping[str, str]]
OWNER_FILE = "owner"  # beside pipe/ and log/: the lease database whose shares the daemon serves


@dataclass(frozen=True)
class MpsHost:
    """Where (``state_dir``) and how (``program``, ``env``) a machine runs MPS daemons.

    ``env`` is added to every daemon's environment; ``parent_env(parent)`` adds what one
    parent's daemon needs (the simulator: the device's memory and SMs). ``attach_timeout_s`` is
    how long ``migctl run`` waits for its command to attach before it warns.
    """

    state_dir: Path
    program: tuple[str, ...] = CONTROL_PROGRAM
    env: Mapping[str, str] = field(default_factory=dict)
    parent_env: ParentEnvironment | None = None
    timeout_s: float = 10.0
    poll_s: float = 0.05
    attach_timeout_s: float = 30.0
    compute_mode: ComputeModeSetter | None = None
    owner: str = ""  # whose shares the daemons serve (a lease database's path)

    def paths(self, parent_uuid: str) -> MpsPaths:
        """The parent's private directories (``<state_dir>/mps/<gpu|mig>-<hash>``)."""
        return mps_paths(self.state_dir, parent_uuid)

    def control(self, parent: ParentDevice | str) -> MpsControl:
        """The controller of one parent's daemon (a UUID is enough to query or stop it)."""
        uuid = parent if isinstance(parent, str) else parent.uuid
        env = {**os.environ, **self.env}
        if self.parent_env is not None and isinstance(parent, ParentDevice):
            env.update(self.parent_env(parent))
        return MpsControl(
            self.paths(uuid), program=self.program, env=env, timeout_s=self.timeout_s,
            poll_s=self.poll_s,
        )  # fmt: skip

    def daemons(self) -> tuple[MpsPaths, ...]:
        """Every parent that has MPS directories under the state directory and that this
        host's owner started (another lease database's daemons are not ours to judge)."""
        return tuple(paths for paths in known_daemons(self.state_dir) if self.owns(paths))

    def claim(self, paths: MpsPaths) -> None:
        """Mark a parent's directories as this owner's (before its daemon starts)."""
        paths.create()
        if self.owner:
            (paths.root / OWNER_FILE).write_text(self.owner + "\n", encoding="utf-8")

    def owns(self, paths: MpsPaths) -> bool:
        """Whether this owner started the parent's daemon (directories without a mark: yes)."""
        try:
            marked = (paths.root / OWNER_FILE).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return True
        return not self.owner or marked == self.owner
