"""Who holds which MIG device: the active leases, for ``status``, ``list`` and ``top``.

Why this exists: "who uses what" shows processes (from NVML) and lease holders (from the lease
store) side by side. Reading must never fail a view and never create a lease database as a
side effect: when the store does not exist there are no leases; when it cannot be read the
views go on without holders (a warning is logged). Importers: ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from migctl.errors import MigctlError
from migctl.leases import Lease, LeaseStore

log = logging.getLogger(__name__)


def active_leases(db_path: Path | str | None) -> dict[str, Lease]:
    """Device uuid -> its active lease (stale leases are ended first); {} when none/unknown."""
    if db_path is None:
        return {}
    path = Path(db_path)
    if not path.exists():
        return {}
    try:
        with LeaseStore(path) as store:
            leases = store.list_leases()
    except MigctlError as error:
        log.warning("lease holders unavailable: %s", error.message)
        return {}
    return {lease.uuid: lease for lease in leases}


def holder_text(lease: Lease) -> str:
    """``alice (job train) #7``: a table cell."""
    job = f" (job {lease.job})" if lease.job else ""
    return f"{lease.user}{job} #{lease.lease_id}"


def age_text(seconds: float) -> str:
    """``42s``, ``5m``, ``3h12m``, ``2d4h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def expiry_text(lease: Lease, now: float | None = None) -> str:
    """``in 4m``, ``never`` (no TTL), or ``ended``."""
    if not lease.active:
        return "ended"
    if lease.expires_at is None:
        return "never"
    remaining = lease.expires_at - (time.time() if now is None else now)
    return f"in {age_text(remaining)}" if remaining > 0 else "due"
