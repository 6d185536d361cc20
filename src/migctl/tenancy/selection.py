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
from migctl.errors import UsageError
from migctl.leases import DeviceCandidate, DeviceRequest
from migctl.model import MigDevice, normalize_profile_name


@dataclass(frozen=True, slots=True)
class DeviceSelection:
    """The ``--profile`` / ``--memory`` / ``--sms`` / ``--device`` options, already parsed."""

    profile: str | None = None
    min_memory_mib: int | None = None
    min_sm_count: int | None = None
    device_uuid: str | None = None

    def request(self) -> DeviceRequest:
        """The lease store's request; a device uuid excludes every other condition."""
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


def sm_counts(backend: Backend, gpu_index: int) -> dict[tuple[str, str], int | None]:
    """(GI profile, CI profile name) -> SMs, from the GPU's live geometry."""
    model = backend.live_model(gpu_index)
    counts: dict[tuple[str, str], int | None] = {
        (ci.gi_profile, ci.name): ci.sm_count for ci in model.ci_profiles
    }
    for gi in model.gi_profiles:
        counts.setdefault((gi.name, gi.name), gi.sm_count)
    return counts


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
