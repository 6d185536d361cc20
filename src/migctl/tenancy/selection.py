"""What a user asks for (a profile, a size, an exact device) and which MIG devices exist now.

Why this exists: ``migctl lease acquire``, ``migctl run`` and ``migctl env`` share one way to
say which MIG device they want and one way to list the devices that could be leased. The lease
store never talks to hardware; this module turns the backend's MIG devices into the store's
:class:`~migctl.leases.DeviceCandidate` values (busy = processes run on it; SM count from the
GPU's live geometry). Importers: the rest of ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from migctl.backends.base import Backend
from migctl.engine.soft_parents import sm_counts
from migctl.errors import NotSupportedError, UsageError
from migctl.leases import DeviceCandidate, DeviceRequest
from migctl.model import MigDevice, normalize_profile_name


@dataclass(frozen=True, slots=True)
class DeviceSelection:
    """The ``--profile`` / ``--memory`` / ``--sms`` / ``--device`` options, already parsed.

    With ``share_percent`` (``--share``) the request is for a soft device (an MPS share) and
    ``min_memory_mib`` is its pinned memory limit; ``parent`` names the GPU (index or UUID)
    or MIG device to share, and the two flags allow what the admission rules refuse by
    default (``migctl.mps.admission``).
    """

    profile: str | None = None
    min_memory_mib: int | None = None
    min_sm_count: int | None = None
    device_uuid: str | None = None
    share_percent: int | None = None
    parent: str | None = None
    oversubscribe: bool = False
    allow_other_user: bool = False

    @property
    def soft(self) -> bool:
        """A soft device (``--share``) is asked for."""
        return self.share_percent is not None

    def check_soft(self) -> None:
        """The options that go with ``--share`` (and only with it); UsageError otherwise."""
        percent = self.share_percent
        if percent is None:
            if self.parent is not None or self.oversubscribe or self.allow_other_user:
                raise UsageError(
                    "--parent, --oversubscribe and --allow-other-user go with --share",
                    hint="add --share 25% (a soft device), or drop them",
                )
            return
        from migctl.mps.shares import check_percent

        check_percent(percent)
        others = {"--profile": self.profile, "--sms": self.min_sm_count}
        others["--device"] = self.device_uuid
        given = [name for name, value in others.items() if value is not None]
        if given:
            raise UsageError(
                f"--share asks for a soft device: {', '.join(given)} does not apply",
                hint="a soft device is --share with --memory (its limit) and --parent; "
                "drop " + ", ".join(given),
            )

    def request(self) -> DeviceRequest:
        """The lease store's request for a MIG device; a device uuid excludes every other
        condition. A soft selection has none (NotSupportedError: it is leased through
        :mod:`migctl.tenancy.soft`, never as a MIG device)."""
        self.check_soft()
        if self.soft:
            raise NotSupportedError(
                "a soft device (--share) is not a MIG device: this way of leasing knows MIG "
                "devices only",
                hint="lease soft devices through a Node (migctl.open_node or connect)",
            )
        if self.device_uuid is not None:
            uuid = self.device_uuid.strip()
            if not uuid.startswith("MIG-"):
                raise UsageError(
                    f"{uuid!r} is not a MIG device uuid",
                    hint="copy a MIG-<uuid> from `migctl list`",
                )
            others = (self.profile, self.min_memory_mib, self.min_sm_count)
            if any(value is not None for value in others):
                raise UsageError(
                    f"ask for device {uuid} or for a profile/size, not both",
                    hint="drop --device, or drop --profile/--memory/--sms",
                )
            return DeviceRequest(uuid=uuid)
        profile = normalize_profile_name(self.profile) if self.profile else None
        return DeviceRequest(
            profile=profile, min_memory_mib=self.min_memory_mib, min_sm_count=self.min_sm_count
        )


def mig_devices(backend: Backend) -> list[MigDevice]:
    """Every MIG device on every GPU in MIG mode, by GPU index then placement."""
    devices: list[MigDevice] = []
    for info in backend.gpus():
        if info.mig is not None and info.mig.current:
            devices.extend(backend.mig_devices(info.index))
    return devices


def candidates(backend: Backend) -> list[DeviceCandidate]:
    """The MIG devices as lease candidates (busy when any process runs on one)."""
    result: list[DeviceCandidate] = []
    counts: dict[int, dict[tuple[str, str], int | None]] = {}
    for device in mig_devices(backend):
        if device.gpu_index not in counts:
            counts[device.gpu_index] = sm_counts(backend, device.gpu_index)
        sms = counts[device.gpu_index].get((device.gi_profile, device.ci_profile))
        result.append(DeviceCandidate.from_mig_device(device, sm_count=sms))
    return result
