"""How the CLI shows soft devices (MPS shares): a table, a lease line, and the isolation truth.

Why this exists: ``list``, ``status``, ``lease acquire|list``, ``run`` and ``env`` must show a
soft device as what it is: a share of a parent (a GPU with MIG off, or a MIG device) with an
SM share, a pinned memory limit, a holder and the parent's MPS server, and never without
saying that it has no fault or memory-bandwidth isolation (:data:`ISOLATION_LINE`). The verbs'
modules call these functions: ``soft_table`` after the MIG devices of ``list``/``status``
(with ``isolation_notes``), ``describe_soft_lease`` where a lease is described (``lease
acquire``, ``run``, ``env``), ``lease_warnings`` after a grant (oversubscribed shares, users
taking turns). Only the CLI imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from migctl.cli.output import UNKNOWN, lease_text, outside, table
from migctl.reports import SOFT_ISOLATION_NOTE
from migctl.untrusted import escape

if TYPE_CHECKING:
    from rich.table import Table

    from migctl.leases import Lease
    from migctl.reports import SoftDeviceView

ISOLATION_LINE = "isolation soft: " + SOFT_ISOLATION_NOTE
SOFT_COLUMNS = (
    "Soft device",
    "GPU",
    "Parent",
    "Share",
    "Memory limit",
    "SMs",
    "Holder",
    "MPS server",
    "Isolation",
)


def soft_table(devices: Sequence[SoftDeviceView]) -> Table | None:
    """One row per soft device (None when there is none): parent, share, limit, holder."""
    if not devices:
        return None
    rows = table(*SOFT_COLUMNS, title="Soft devices (CUDA MPS shares)")
    for device in devices:
        origin = "" if device.from_layout else " (leased)"
        rows.add_row(
            device.uuid + origin,
            str(device.gpu_index),
            outside(f"{device.parent_name} {device.parent_uuid}"),
            f"{device.percent}%",
            f"{device.memory_limit_mib} MiB",
            UNKNOWN if device.sm_count is None else f"~{device.sm_count}",
            lease_text(device.lease),
            device.server,
            device.isolation,
        )
    return rows


def isolation_notes(devices: Sequence[SoftDeviceView]) -> list[str]:
    """The note lines to print under a table that shows soft devices."""
    return [ISOLATION_LINE] if devices else []


def describe_soft_lease(lease: Lease) -> str:
    """``lease 7: SOFT-1a2b3c4d-1 (25% of GPU-..., 11517 MiB pinned, isolation soft) for
    alice (job x)``; print with ``markup=False`` (a job name may hold ``[``)."""
    holder = escape(lease.owner.describe())
    return (
        f"lease {lease.lease_id}: {lease.uuid} ({lease.share_percent}% of {lease.parent_uuid}, "
        f"{lease.memory_limit_mib} MiB pinned, isolation soft) for {holder}"
    )


def lease_warnings(lease: Lease) -> list[str]:
    """What the user must be told about a soft lease just granted (empty for a MIG lease)."""
    if not lease.soft:
        return []
    return [*lease.notes, ISOLATION_LINE]
