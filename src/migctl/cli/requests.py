"""Command-line options -> the request values a node takes (targets, lease requests).

Why this exists: a target or a lease request crosses to the daemon as a ``migctl.schemas``
model, whose bounds keep hostile values from being expanded anywhere. Options outside those
bounds are refused here with the option's name (exit 2), before any node is asked, with or
without a daemon; only a count or size above its bound (more than any GPU holds:
:data:`HARDWARE_BOUNDED`) is left for a local node to refuse against the real hardware, saying
how much the GPU does hold (exit 5). Imported by the verb modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from migctl.errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from migctl.schemas.leases import LeaseRequest

M = TypeVar("M", bound="BaseModel")
TOO_LARGE = "less_than_equal"
# fields whose bound is "more than any GPU holds": a local node says what this one holds
HARDWARE_BOUNDED = frozenset({"n", "count", "memory_mib", "sms", "share"})
DURATIONS = frozenset({"wait_seconds", "ttl_seconds"})
OPTIONS = {  # a request field -> the option that sets it
    "uuid": "--device",
    "profile": "--profile",
    "memory_mib": "--memory",
    "sms": "--sms",
    "wait_seconds": "--wait",
    "ttl_seconds": "--ttl",
    "job": "--job",
    "pid": "--pid",
    "priority": "--priority",
    "n": "--split",
    "demand": "--demand",
    "share": "--share",
    "count": "--count",
    "parent": "--parent",
    "oversubscribe": "--oversubscribe",
    "allow_other_user": "--allow-other-user",
}


def checked(model: type[M], options: str, **fields: Any) -> M:
    """``model(**fields)``, or a usage error naming the option and what is wrong with it."""
    from pydantic import ValidationError

    try:
        return model.model_validate(fields)
    except ValidationError as error:
        problems = error.errors(include_url=False)
        if all(p["type"] == TOO_LARGE and _field(p) in HARDWARE_BOUNDED for p in problems):
            return model.model_construct(**fields)  # the node says what the GPUs hold
        first = problems[0]
        option = OPTIONS.get(_field(first), options)
        message = first["msg"]
        if first["type"] == TOO_LARGE and _field(first) in DURATIONS:
            message = (
                f"{first['input']:.0f} s is longer than the {first['ctx']['le']:.0f} s allowed"
            )
        raise UsageError(
            f"{option}: {message}",
            hint="see the command's --help",
            context={"option": option},
        ) from None


def _field(problem: Any) -> str:
    """The request field a validation problem is about ('' for the whole model)."""
    return str(problem["loc"][0]) if problem["loc"] else ""


def lease_request(
    *,
    profile: str | None,
    memory: str | None,
    sms: int | None,
    device: str | None,
    ttl: str | None = None,
    wait: str = "0",
    job: str | None = None,
    pid: int | None = None,
    create: bool = False,
    priority: int | None = None,
    share: str | None = None,
    parent: str | None = None,
    oversubscribe: bool = False,
    allow_other_user: bool = False,
) -> LeaseRequest:
    """The lease request of ``lease acquire``, ``run`` and ``env`` options (with ``share``, a
    soft device)."""
    from migctl.mps.shares import parse_share
    from migctl.schemas.leases import LeaseRequest
    from migctl.sizes import parse_duration_s, parse_memory_mib
    from migctl.tenancy.selection import DeviceSelection
    from migctl.untrusted import check_label

    memory_mib = None if memory is None else parse_memory_mib(memory)
    percent = None if share is None else parse_share(share)
    selection = DeviceSelection(
        profile, memory_mib, sms, device, percent, parent, oversubscribe, allow_other_user
    )
    if selection.soft:
        selection.check_soft()  # --share with a device or profile, bad --parent, ...
    else:
        selection.request()  # a bad uuid, or uuid + size; --parent without --share
    if job is not None:
        check_label(job, "job name")  # others see it: printable, 1 to 128 characters (exit 11)
    return checked(
        LeaseRequest,
        "lease options",
        uuid=device,
        profile=profile,
        memory_mib=memory_mib,
        sms=sms,
        wait_seconds=parse_duration_s(wait),
        ttl_seconds=None if ttl is None else parse_duration_s(ttl),
        job=job,
        pid=pid,
        create=create,
        priority=priority,
        share=percent,
        parent=parent,
        oversubscribe=oversubscribe,
        allow_other_user=allow_other_user,
    )
