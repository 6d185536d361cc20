"""The environment and container flags that point a program at one MIG device or soft device.

Why this exists: ``migctl run``, ``migctl env`` and ``migctl docker-args`` must name a leased
device the same way (:func:`lease_environment` is the one place for a lease). A soft device
(an MPS share) adds the MPS client variables to its parent's: ``CUDA_MPS_PIPE_DIRECTORY``
(the parent's MPS control daemon), ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` (the SM share) and
``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` (the memory limit, ``0=<MiB>M``: the one device the
client sees), as :mod:`migctl.mps.environment` spells them. CUDA selects a device with
``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` (a soft device: its parent's ``GPU-``/``MIG-<uuid>``);
the NVIDIA container runtime with ``NVIDIA_VISIBLE_DEVICES=MIG-<uuid>``; Docker's ``--gpus``
flag takes
``device=MIG-<uuid>`` (Docker reads the value as CSV: double quotes are needed only around a
list of several devices, and one device is all migctl hands out, so the flags need no shell
quoting and survive an unquoted ``$(migctl docker-args ...)``); a CDI-enabled runtime takes
``--device KIND=NAME``.
Importers: ``migctl.tenancy`` and the CLI. Pure: no I/O.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from migctl.errors import InvalidStateError
from migctl.leases import Lease
from migctl.mps.environment import (
    PINNED_MEMORY_LIMIT,
    PIPE_DIRECTORY,
    THREAD_PERCENTAGE,
    pinned_limit_value,
)

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
NVIDIA_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
LEASE_ID_VARIABLE = "MIGCTL_LEASE_ID"
DEFAULT_CDI_KIND = "nvidia.com/gpu"


def device_environment(uuid: str, lease_id: int | None = None) -> dict[str, str]:
    """The variables that make CUDA and the NVIDIA container runtime use only ``uuid``."""
    env = {CUDA_VISIBLE_DEVICES: uuid, NVIDIA_VISIBLE_DEVICES: uuid}
    if lease_id is not None:
        env[LEASE_ID_VARIABLE] = str(lease_id)
    return env


def lease_environment(lease: Lease) -> dict[str, str]:
    """What the holder of ``lease`` must run with: its device, and for a soft device the MPS
    client variables (share, memory limit, the parent daemon's pipe directory)."""
    env = device_environment(lease.cuda_device, lease.lease_id)
    if not lease.soft:
        return env
    if lease.share_percent is None or lease.memory_limit_mib is None or not lease.pipe_dir:
        raise InvalidStateError(
            f"soft lease {lease.lease_id} lacks its share, memory limit or MPS pipe directory",
            hint="release it and lease again",
            context={"lease_id": lease.lease_id},
        )
    env[PIPE_DIRECTORY] = lease.pipe_dir
    env[THREAD_PERCENTAGE] = str(lease.share_percent)
    env[PINNED_MEMORY_LIMIT] = pinned_limit_value(lease.memory_limit_mib)
    return env


def shell_exports(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, quoted for POSIX shells (for ``eval "$(migctl env ...)"``)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


@dataclass(frozen=True, slots=True)
class DockerArgs:
    """The argv tokens for each way of handing one MIG device to ``docker run``."""

    gpus: tuple[str, ...]  # Docker's --gpus (needs the NVIDIA container toolkit)
    runtime_env: tuple[str, ...]  # the NVIDIA runtime reading NVIDIA_VISIBLE_DEVICES
    cdi: tuple[str, ...]  # a CDI spec naming the device (`migctl cdi generate`)

    def forms(self) -> dict[str, tuple[str, ...]]:
        return {"gpus": self.gpus, "env": self.runtime_env, "cdi": self.cdi}

    @staticmethod
    def shell(tokens: tuple[str, ...]) -> str:
        """The tokens as one shell-quoted line: ``--gpus device=MIG-...``."""
        return shlex.join(tokens)


def docker_args(uuid: str, cdi_kind: str = DEFAULT_CDI_KIND) -> DockerArgs:
    return DockerArgs(
        gpus=("--gpus", f"device={uuid}"),
        runtime_env=("--runtime=nvidia", "-e", f"{NVIDIA_VISIBLE_DEVICES}={uuid}"),
        cdi=("--device", f"{cdi_kind}={uuid}"),
    )
