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

A container that uses a soft device (:func:`soft_docker_args`) gets its parent (as above) and
the MPS client setup: the three ``CUDA_MPS_*`` variables, the parent daemon's pipe directory
bind-mounted at the same path (the daemon, its server and its clients meet through the named
pipes and Unix sockets there, and every one of them must name the same directory),
``--ipc=host`` (an MPS client shares memory with the MPS server, which runs on the host: the
container needs the host's IPC namespace and ``/dev/shm``; docs/soft-partitions.md) and
``--user <uid>`` of the lease holder (MPS serves one Unix user at a time; a container running
as another uid, root by default, would wait for the holder's clients to end, or make them wait).
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
IPC_HOST = "--ipc=host"
UNSAFE_IN_FLAGS = frozenset(":,") | frozenset(" \t\n")  # -v splits on ':'; $(...) on blanks


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


def mps_docker_flags(lease: Lease) -> tuple[str, ...]:
    """The flags that make a container's CUDA programs clients of ``lease``'s soft device:
    ``--ipc=host``, the pipe directory mounted at its own path, the MPS client variables and
    (when the holder's uid is known) ``--user <uid>``."""
    env = lease_environment(lease)  # refuses a soft lease that lacks its share or pipes
    pipe = env[PIPE_DIRECTORY]
    if any(char in UNSAFE_IN_FLAGS for char in pipe):
        raise InvalidStateError(
            f"the MPS pipe directory {pipe!r} of lease {lease.lease_id} holds a blank, ':' or "
            "',', which docker's -v flag (or an unquoted $(...)) cannot carry",
            hint="give migctl a state directory without blanks, colons or commas",
            context={"lease_id": lease.lease_id, "pipe_dir": pipe},
        )
    flags = [IPC_HOST, "-v", f"{pipe}:{pipe}"]
    for name in (PIPE_DIRECTORY, THREAD_PERCENTAGE, PINNED_MEMORY_LIMIT):
        flags += ["-e", f"{name}={env[name]}"]
    if lease.uid >= 0:
        flags += ["--user", str(lease.uid)]
    return tuple(flags)


def soft_docker_args(lease: Lease, cdi_kind: str = DEFAULT_CDI_KIND) -> DockerArgs:
    """Every form of :func:`docker_args` for a soft lease: its parent device, then the MPS
    client flags (:func:`mps_docker_flags`)."""
    if not lease.soft:
        raise InvalidStateError(
            f"lease {lease.lease_id} is a MIG device, not a soft device",
            context={"lease_id": lease.lease_id},
        )
    mps = mps_docker_flags(lease)
    base = docker_args(lease.cuda_device, cdi_kind)
    return DockerArgs(gpus=base.gpus + mps, runtime_env=base.runtime_env + mps, cdi=base.cdi + mps)
