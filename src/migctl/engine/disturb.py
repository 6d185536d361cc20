"""Who a plan would disturb: for each instance it destroys, the processes and lease on it.

Why this exists: ``migctl apply --dry-run`` must say exactly which instances, processes
and leases a change would touch, before anyone is disturbed. A plan lists the GIs and CIs
it destroys; this joins them with the MIG devices' processes (and their users) and the
active leases.
"""

from __future__ import annotations

from collections.abc import Mapping

from migctl.backends.base import Backend
from migctl.engine.current import active_leases
from migctl.engine.files import MachineFiles
from migctl.host import process_facts
from migctl.model import MigDevice
from migctl.planner import DestroyCi, DestroyGi, Plan


def _device_text(device: MigDevice, leases: Mapping[str, str]) -> str:
    parts = []
    for proc in device.processes:
        facts = process_facts(proc.pid)
        command = (facts.command or "?").split()[0].rsplit("/", 1)[-1]
        parts.append(f"process {proc.pid} ({facts.user or '?'}, {command})")
    if device.uuid in leases:
        parts.append(leases[device.uuid])
    return f"{device.uuid}: " + ("; ".join(parts) if parts else "idle")


def disturbed(
    backend: Backend, plans: Mapping[int, Plan], files: MachineFiles | None = None
) -> dict[int, list[str]]:
    """Per GPU, one line per MIG device the plan destroys, with what runs or is leased there."""
    leases = active_leases(MachineFiles.of(backend, files).lease_db)
    found: dict[int, list[str]] = {}
    for gpu, plan in sorted(plans.items()):
        gone_gis = {op.gi_id for op in plan.ops if isinstance(op, DestroyGi)}
        gone_cis = {(op.gi_id, op.ci_id) for op in plan.ops if isinstance(op, DestroyCi)}
        if not gone_gis and not gone_cis:
            continue
        for device in backend.mig_devices(gpu):
            if device.gi_id in gone_gis or (device.gi_id, device.ci_id) in gone_cis:
                label = f"GI {device.gi_id} CI {device.ci_id} ({device.ci_profile} at {device.placement})"
                found.setdefault(gpu, []).append(f"{label} {_device_text(device, leases)}")
    return found
