"""Who may change a lease, and the refusal for touching a lease that already ended.

Why this module exists: release and renew apply the same two rules and must word them the same
way. Who counts as an admin is the caller's decision (root for the CLI, a role in the service);
the store only honours ``admin=True``. Only the lease store imports this module.
"""

from __future__ import annotations

from migctl.errors import InvalidStateError, PermissionDeniedError
from migctl.leases.choose import format_time
from migctl.leases.types import Lease


def check_may_change(lease: Lease, *, user: str, admin: bool, action: str) -> None:
    """Refuse ``action`` on another user's lease unless ``admin``."""
    if lease.user == user or admin:
        return
    raise PermissionDeniedError(
        f"cannot {action} lease {lease.lease_id} on {lease.uuid}: it belongs to "
        f"{lease.describe_holder()}, not {user}",
        hint=f"ask {lease.user} to {action} it, or run as an admin (root) with --admin",
        context={"lease_id": lease.lease_id, "holder": lease.user, "user": user},
    )


def refuse_ended(lease: Lease, *, action: str) -> None:
    """Refuse ``action`` on a lease that has ended (released, expired, holder died, revoked)."""
    if lease.active:
        return
    reason = lease.end_reason.value if lease.end_reason is not None else "ended"
    ended_at = format_time(lease.ended_at) if lease.ended_at is not None else "?"
    raise InvalidStateError(
        f"cannot {action} lease {lease.lease_id} on {lease.uuid}: it already ended "
        f"({reason} at {ended_at})",
        hint="acquire a new lease",
        context={"lease_id": lease.lease_id, "end_reason": reason},
    )
