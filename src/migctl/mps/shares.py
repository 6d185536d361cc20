"""Soft devices: a share of a GPU or of a MIG device's SMs, with a pinned memory limit.

Why this exists: CUDA MPS lets each client of one MPS server use a fixed fraction of the
SMs (``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``) and a fixed amount of device memory
(``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``). A *soft device* is that pair on a *parent*: a whole
GPU (MIG off, named ``GPU-<uuid>``) or one MIG device (``MIG-<uuid>``). The lease store, the
layout files, the daemon and ``migctl run --share`` pass these frozen values; parsing what
users type (``25%``, ``12GiB``) happens here, once. Pure: no I/O. Anyone above
``migctl.sizes`` in the layers may import it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.errors import InsufficientResourcesError, NotFoundError, UsageError
from migctl.sizes import parse_memory_mib

MAX_PERCENT = 100
SMS_PER_TPC = 2  # MPS hands out SMs in pairs (one TPC): measured 132 SMs -> 32 at 25%
_PERCENT = re.compile(r"(\d+(?:\.\d*)?)\s*%?")


class ParentKind(enum.StrEnum):
    """What a soft device is carved from."""

    GPU = "gpu"  # a whole GPU with MIG off
    MIG = "mig"  # one MIG device (a compute instance)


def parent_kind(uuid: str) -> ParentKind:
    """``GPU-...`` -> GPU, ``MIG-...`` -> MIG; UsageError for anything else."""
    if uuid.startswith("GPU-") and len(uuid) > 4:
        return ParentKind.GPU
    if uuid.startswith("MIG-") and len(uuid) > 4:
        return ParentKind.MIG
    raise UsageError(
        f"{uuid!r} is not a GPU or MIG device UUID",
        hint="name the parent as GPU-<uuid> or MIG-<uuid> (see `migctl list`)",
    )


@dataclass(frozen=True, slots=True)
class ParentDevice:
    """A device that soft shares are carved from, as the caller read it from the hardware.

    ``memory_mib`` is the memory CUDA reports for it (the GPU's, or the MIG device's);
    ``sm_count`` its SMs when known; ``name`` a label (``H100 80GB HBM3``, ``3g.40gb``).
    """

    uuid: str
    gpu_index: int
    memory_mib: int
    sm_count: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        parent_kind(self.uuid)
        if self.memory_mib <= 0 or self.gpu_index < 0:
            raise UsageError(
                f"parent {self.uuid}: memory {self.memory_mib} MiB and GPU index "
                f"{self.gpu_index} must be positive",
                hint="read the parent's memory from NVML (memory.total)",
            )

    @property
    def kind(self) -> ParentKind:
        return parent_kind(self.uuid)

    def label(self) -> str:
        """``GPU 0 (H100 80GB HBM3)`` or ``MIG 3g.40gb on GPU 1 (MIG-...)``."""
        if self.kind is ParentKind.GPU:
            return f"GPU {self.gpu_index} ({self.name or self.uuid})"
        return f"MIG {self.name or 'device'} on GPU {self.gpu_index} ({self.uuid})"


@dataclass(frozen=True, slots=True)
class SoftShare:
    """What is asked for: an SM share in whole percent, and a memory limit (None: default)."""

    percent: int
    memory_mib: int | None = None

    def __post_init__(self) -> None:
        check_percent(self.percent)
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise UsageError(
                f"a memory limit must be above 0 MiB, got {self.memory_mib}",
                hint="write e.g. --memory 12GiB, or leave it out for the default",
            )

    def describe(self) -> str:
        memory = "default memory" if self.memory_mib is None else f"{self.memory_mib} MiB"
        return f"{self.percent}% ({memory})"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a share: a Unix user, the lease, and the PIDs of its running clients."""

    user: str
    lease_id: int | None = None
    pids: tuple[int, ...] = ()

    def describe(self) -> str:
        """``alice (lease #7) PIDs 4321, 4322``."""
        lease = f" (lease #{self.lease_id})" if self.lease_id is not None else ""
        pids = f" PIDs {', '.join(map(str, self.pids))}" if self.pids else ""
        return f"{self.user}{lease}{pids}"


@dataclass(frozen=True, slots=True)
class SoftDevice:
    """A soft device: an SM share and a pinned memory limit on one parent."""

    parent: ParentDevice
    percent: int
    memory_limit_mib: int

    def __post_init__(self) -> None:
        check_percent(self.percent)
        check_memory_fits(self.parent, self.memory_limit_mib)

    @property
    def sm_estimate(self) -> int | None:
        """The SMs a client of this share should see (None when the parent's are unknown)."""
        if self.parent.sm_count is None:
            return None
        return sms_for_share(self.percent, self.parent.sm_count)

    def describe(self) -> str:
        """``25% of GPU 0 (H100 80GB HBM3), ~32 of 132 SMs, 20480 MiB pinned``."""
        sms = self.sm_estimate
        seen = f", ~{sms} of {self.parent.sm_count} SMs" if sms is not None else ""
        return f"{self.percent}% of {self.parent.label()}{seen}, {self.memory_limit_mib} MiB pinned"


def check_percent(percent: int) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise UsageError(f"an SM share must be a whole percent, got {percent!r}")
    if not 0 < percent <= MAX_PERCENT:
        raise UsageError(
            f"an SM share must be between 1% and 100%, got {percent}%",
            hint="write e.g. --share 25%",
        )


def parse_share(text: str) -> int:
    """``"25%"`` / ``"25"`` -> 25. Whole percents from 1 to 100; anything else: UsageError."""
    match = _PERCENT.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"cannot read SM share {text!r}",
            hint="write a whole percent from 1 to 100, e.g. 25% (or 25)",
        )
    value = float(match.group(1))
    if not value.is_integer():
        raise UsageError(
            f"SM share {text!r} is not a whole percent",
            hint="MPS hands out SMs in pairs, so migctl takes whole percents: write e.g. 33%",
        )
    check_percent(int(value))
    return int(value)


def parse_memory_limit(text: str) -> int:
    """``"12GiB"`` -> 12288 MiB (the project's size reader; a bare number is MiB); > 0."""
    memory_mib = parse_memory_mib(text)
    if memory_mib <= 0:
        raise UsageError(
            f"a memory limit must be above 0, got {text!r}",
            hint="write e.g. --memory 12GiB, or leave it out for the default",
        )
    return memory_mib


def parse_soft_share(share: str, memory: str | None = None) -> SoftShare:
    """``--share 25% [--memory 12GiB]`` as a :class:`SoftShare`."""
    return SoftShare(parse_share(share), parse_memory_limit(memory) if memory else None)


def default_memory_mib(parent: ParentDevice, percent: int) -> int:
    """The memory limit of a share given none: the same fraction of memory as of SMs."""
    return max(1, parent.memory_mib * percent // MAX_PERCENT)


def sms_for_share(percent: int, sm_count: int) -> int:
    """SMs a client with ``percent`` sees: whole TPCs (2 SMs), rounded down, at least one.

    Measured on an H100 (132 SMs, driver 580): 10% -> 12, 25% -> 32, 50% -> 66, 75% -> 98,
    90% -> 118, 100% -> 132 (bench/results/mps_interference.md).
    """
    tpcs = sm_count // SMS_PER_TPC
    return max(1, tpcs * percent // MAX_PERCENT) * SMS_PER_TPC


def check_memory_fits(parent: ParentDevice, memory_mib: int, already_mib: int = 0) -> None:
    """Pinned limits are hard: ``memory_mib`` plus what is already pinned must fit."""
    if memory_mib <= 0:
        raise UsageError(f"a memory limit must be above 0 MiB, got {memory_mib}")
    free_mib = parent.memory_mib - already_mib
    if memory_mib > free_mib:
        taken = f" ({already_mib} MiB already pinned by other shares)" if already_mib else ""
        raise InsufficientResourcesError(
            f"{parent.label()} has {parent.memory_mib} MiB{taken}: a {memory_mib} MiB "
            "pinned memory limit does not fit",
            hint=f"ask for at most {max(free_mib, 0)} MiB (--memory {max(free_mib, 0)}MiB), "
            "or choose another parent",
            context={"parent": parent.uuid, "free_mib": max(free_mib, 0), "asked_mib": memory_mib},
        )


def soft_device(parent: ParentDevice, share: SoftShare, already_mib: int = 0) -> SoftDevice:
    """``share`` on ``parent`` with its memory limit settled (default when not given)."""
    if share.memory_mib is not None:
        check_memory_fits(parent, share.memory_mib, already_mib)
        return SoftDevice(parent, share.percent, share.memory_mib)
    memory_mib = default_memory_mib(parent, share.percent)
    try:
        check_memory_fits(parent, memory_mib, already_mib)
    except InsufficientResourcesError as refused:
        raise InsufficientResourcesError(
            f"{refused.message} (the default limit: {share.percent}% of its memory)",
            hint=refused.hint,
            context=refused.context,
        ) from None
    return SoftDevice(parent, share.percent, memory_mib)


def resolve_parent(text: str, parents: Sequence[ParentDevice]) -> ParentDevice:
    """The parent a user named: a GPU index (``0``), a ``GPU-<uuid>`` or a ``MIG-<uuid>``.

    ``parents`` are the devices soft shares may be carved from now: whole GPUs with MIG off
    and the MIG devices of GPUs with MIG on. A GPU index of a GPU in MIG mode is refused
    with its MIG devices as the fix.
    """
    wanted = text.strip()
    if wanted.isdigit():
        index = int(wanted)
        whole = [p for p in parents if p.kind is ParentKind.GPU and p.gpu_index == index]
        if whole:
            return whole[0]
        migs = sorted(p.uuid for p in parents if p.gpu_index == index)
        if migs:
            raise UsageError(
                f"GPU {index} is in MIG mode: a soft share is carved from one of its MIG devices",
                hint="name one: " + ", ".join(migs),
            )
        raise NotFoundError(f"no GPU {index} to carve soft shares from", hint=_known(parents))
    for parent in parents:
        if parent.uuid.lower() == wanted.lower():
            return parent
    parent_kind(wanted)
    raise NotFoundError(f"no device {wanted} to carve soft shares from", hint=_known(parents))


def _known(parents: Sequence[ParentDevice]) -> str:
    if not parents:
        return "this machine has no GPU or MIG device to share"
    return "devices: " + ", ".join(f"{p.uuid} ({p.label()})" for p in parents)
