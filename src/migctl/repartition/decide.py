"""``decide``: which waiting requests get a free device now, which get one by reshaping idle slices.

Why this exists: the daemon owns the GPUs; requests that no free MIG device serves wait. With
repartitioning on, idle instances may be destroyed and the slices re-cut so that waiting
requests fit. This function makes that decision from plain values (no hardware, no clock),
so the daemon, the trace replayer and tests all run the same rules. Pure and deterministic.

Requests are served one at a time in service order (``requests.service_order``: effective
priority = priority + waited // aging_seconds, then age). For each request, first that works:

1. a free device whose GI is no larger than the smallest profile serving the request
   (smallest first, ties by GPU index, GI id, CI id, as the lease store chooses);
2. with mode ``on``, a new instance of the smallest profile that fits on some GPU by
   destroying only instances idle for at least ``min_idle_seconds`` (never a busy, leased,
   recently used, or just-granted one): fewest destroyed, fewest slices destroyed, a GPU
   already being reshaped in this decision (no extra budget), the fullest GPU, lowest index.
   Each reshaped GPU uses one unit of the hourly budget;
3. a larger free device (smallest first).
Otherwise it waits, with the reason (``WaitReason``).

Fairness (no starvation): when the request at the head of the order has waited at least
``reserve_after_seconds`` and still cannot be served, it *reserves* one GPU: the GPU and
placement with the fewest busy, then young, then any instances in its way (then the smallest
profile, lowest GPU index, lowest start). Nobody else is granted a device or a new instance
on that GPU, and others may only open reshapes while one unit of budget stays for the head.
Why the head is then served in bounded time, given that every lease ends (finite durations)
and the caller reports idle times: nothing new starts on the reserved GPU, so its cost
(busy, young, all in the way) only falls: a busy instance ends and turns young, a young one
ages past ``min_idle_seconds``. Each decision picks the cheapest option, so the cost of the
current choice never rises and falls at every such event; it takes finitely many values,
so after finitely many events nothing busy or young is in the way; the hourly window frees
budget; step 2 then serves the head (it is served first in every decision). With aging,
any waiting request's effective priority eventually exceeds every newcomer's (static
priorities are bounded), so it reaches the head once the finitely many requests ahead of it
are served. A device missing from ``idle_since`` never ages: the daemon must report them.
Without aging or reservations, a large request can starve (tests show both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from migctl.repartition.decision import (
    Decision,
    Grant,
    Reservation,
    Reshape,
    Waiting,
    WaitReason,
)
from migctl.repartition.gpu_work import Fit, GpuWork, build_reshape
from migctl.repartition.policy import Policy
from migctl.repartition.requests import (
    Request,
    WaitQueue,
    creatable_profiles,
    service_order,
)
from migctl.repartition.view import Device, MachineView, free_devices

Size = tuple[str | None, int | None, int | None]
REASON_RANK = (
    WaitReason.BUDGET,
    WaitReason.RESERVED,
    WaitReason.MIN_IDLE,
    WaitReason.RECONFIGURING,
    WaitReason.BUSY,
)


def device_serves(request: Request, device: Device) -> bool:
    """Whether ``device`` meets every condition of ``request`` (free or not is not checked)."""
    if request.profile is not None and device.profile != request.profile:
        return False
    if request.memory_mib is not None and device.memory_mib < request.memory_mib:
        return False
    if request.sms is None:
        return True
    return device.sm_count is not None and device.sm_count >= request.sms


@dataclass
class _Work:
    machine: MachineView
    policy: Policy
    now: float
    gpus: list[GpuWork] = field(init=False)
    budget: int | None = field(init=False)
    reservation: Reservation | None = None
    grants: list[Grant] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    failed: dict[Size, Waiting] = field(default_factory=dict)
    later: dict[Size, int] = field(default_factory=dict)  # requests not yet considered
    sample: dict[Size, Request] = field(default_factory=dict)  # one request of each size

    def __post_init__(self) -> None:
        minimum = self.policy.min_idle_seconds
        self.gpus = [GpuWork.start(g, self.now, minimum) for g in self.machine.gpus]
        self.budget = self.policy.budget_left(self.machine.reshape_times_s, self.now)

    def usable(self, request: Request) -> list[GpuWork]:
        """GPUs this request may use (all but one reserved for another request)."""
        held = self.reservation
        if held is None or held.request_id == request.id:
            return self.gpus
        return [g for g in self.gpus if g.index != held.gpu_index]

    # -- serving --------------------------------------------------------------------------

    def queue(self, ordered: Iterable[Request]) -> None:
        for request in ordered:
            self.later[request.size] = self.later.get(request.size, 0) + 1
            self.sample.setdefault(request.size, request)

    def serve(self, request: Request) -> bool:
        self.later[request.size] -= 1
        if request.size in self.failed:  # nothing changed since one of this size failed
            return False
        if self.grant(request, oversize=False):
            return True
        if self.policy.enabled and self.reshape_for(request):
            return True
        return self.grant(request, oversize=True)

    def grant(self, request: Request, *, oversize: bool) -> bool:
        options = []
        for gpu in self.usable(request):
            smallest = _smallest_slices(gpu, request)
            for device in gpu.free:
                if not device_serves(request, device):
                    continue
                bigger = smallest is not None and device.gi_profile.memory_slices > smallest
                if bigger == oversize:
                    options.append((device.sort_key(), gpu, device))
        if not options:
            return False
        _, gpu, device = min(options, key=lambda item: item[0])
        gpu.take_device(device)
        self.grants.append(
            Grant(
                request.id, device.gpu_index, device.gi_id, device.ci_id, device.profile,
                device.gi_profile.name, device.uuid, oversize,
            )
        )  # fmt: skip
        self.failed.clear()
        return True

    def reshape_for(self, request: Request) -> bool:
        fits = []
        for gpu in self.usable(request):
            profiles = creatable_profiles(gpu.view.model, request)
            if profiles and gpu.can_reshape:
                fit = gpu.fit(profiles, spare=self.spare(gpu, request))
                if fit is not None and self._affordable(fit, request):
                    fits.append((fit.cost, gpu, fit))
        if not fits:
            return False
        _, gpu, best = min(fits, key=lambda item: item[0])
        gpu.add(best, request.id)
        if best.opens_reshape and self.budget is not None:
            self.budget -= 1
        self.failed.clear()
        return True

    def spare(self, gpu: GpuWork, request: Request) -> frozenset[int]:
        """GIs holding a free device that another waiting request could take as it is."""
        others = [self.sample[size] for size, count in self.later.items() if count]
        spare: set[int] = set()
        for device in gpu.free:
            if device.gi_id in spare:
                continue
            for other in others:
                smallest = _smallest_slices(gpu, other)
                fits = smallest is None or device.gi_profile.memory_slices <= smallest
                if fits and device_serves(other, device):
                    spare.add(device.gi_id)
                    break
        return frozenset(spare)

    def _affordable(self, fit: Fit, request: Request) -> bool:
        if not fit.opens_reshape or self.budget is None:
            return True
        held = self.reservation
        keep = 1 if held is not None and held.request_id != request.id else 0
        return self.budget - keep >= 1

    # -- waiting --------------------------------------------------------------------------

    def wait(self, request: Request) -> Waiting:
        known = self.failed.get(request.size)
        if known is None:
            known = self.diagnose(request)
            self.failed[request.size] = known
        waiting = Waiting(request.id, known.reason, known.detail)
        self.waiting.append(waiting)
        return waiting

    def diagnose(self, request: Request) -> Waiting:
        if not self._servable(request):
            return Waiting(request.id, WaitReason.UNSERVABLE, _unservable_text(request))
        if not self.policy.enabled:
            text = f"no free device serves {request.describe()} and repartitioning is off"
            return Waiting(request.id, WaitReason.NO_FREE_DEVICE, text)
        found = [self._gpu_reason(gpu, request) for gpu in self.gpus]
        reasons = [item for item in found if item is not None]
        if not reasons:
            return Waiting(request.id, WaitReason.UNSERVABLE, _unservable_text(request))
        reason, text = min(reasons, key=lambda item: REASON_RANK.index(item[0]))
        return Waiting(request.id, reason, text)

    def _gpu_reason(self, gpu: GpuWork, request: Request) -> tuple[WaitReason, str] | None:
        profiles = creatable_profiles(gpu.view.model, request)
        where = f"GPU {gpu.index}"
        if not profiles or not gpu.view.current.mig_enabled:
            return None
        if gpu.view.reconfiguring:
            return WaitReason.RECONFIGURING, f"{where} is being reshaped"
        if gpu.fit(profiles) is not None:
            if gpu not in self.usable(request):
                assert self.reservation is not None
                held = self.reservation.request_id
                return WaitReason.RESERVED, f"{where} is reserved for request {held}"
            return WaitReason.BUDGET, f"the reconfiguration budget is spent ({where} would fit)"
        if gpu.fit(profiles, young_eligible=True) is not None:
            text = f"{where} has idle instances younger than {self.policy.min_idle_seconds:g} s"
            return WaitReason.MIN_IDLE, text
        return WaitReason.BUSY, "busy or leased instances hold the slices it needs"

    def _servable(self, request: Request) -> bool:
        for gpu in self.gpus:
            if creatable_profiles(gpu.view.model, request):
                return True
            if any(device_serves(request, d) for d in free_devices(gpu.view, include_busy=True)):
                return True
        return False

    # -- fairness -------------------------------------------------------------------------

    def reserve(self, request: Request) -> None:
        """Reserve a GPU for the head of the queue (see the module docstring)."""
        options = []
        for gpu in self.gpus:
            if not gpu.can_reshape:
                continue
            for profile in creatable_profiles(gpu.view.model, request):
                options.extend(gpu.reservation_options(profile))
        if options:
            best = min(options, key=lambda option: option.cost)
            self.reservation = Reservation(
                request.id, best.gpu_index, best.profile.name, best.placement, best.blocking
            )
            self.failed.clear()

    def decision(self) -> Decision:
        reshapes: list[Reshape] = []
        for gpu in self.gpus:
            if not gpu.reshaping:
                continue
            built = build_reshape(gpu)
            if built is None:
                self._refused(gpu)
                continue
            reshapes.append(built)
        return Decision(
            self.now, self.policy.mode, tuple(self.grants), tuple(reshapes),
            tuple(self.waiting), self.reservation, self.budget,
        )  # fmt: skip

    def _refused(self, gpu: GpuWork) -> None:
        if self.budget is not None:
            self.budget += 1
        for _, request_id in gpu.new:
            text = f"the planner refused the reshape of GPU {gpu.index} (see the daemon log)"
            self.waiting.append(Waiting(request_id, WaitReason.BUSY, text))


def _smallest_slices(gpu: GpuWork, request: Request) -> int | None:
    profiles = creatable_profiles(gpu.view.model, request)
    return profiles[0].memory_slices if profiles else None


def _unservable_text(request: Request) -> str:
    return f"no GPU of this machine offers a device or a profile for {request.describe()}"


def decide(
    machine: MachineView,
    queue: WaitQueue | Iterable[Request],
    policy: Policy,
    now: float,
) -> Decision:
    """Grants, reshapes and waiting reasons for ``queue`` on ``machine`` at ``now``.

    See the module docstring for the rules. Apply the grants (existing devices) at once and
    each reshape's plan, then lease the devices it creates as its ``grants`` say.
    """
    if isinstance(queue, WaitQueue):
        ordered = queue.ordered(now, policy.aging_seconds)
    else:
        ordered = service_order(queue, now, policy.aging_seconds)
    work = _Work(machine, policy, now)
    work.queue(ordered)
    for position, request in enumerate(ordered):
        if work.serve(request):
            continue
        waiting = work.wait(request)
        if position == 0 and _may_reserve(policy, request, waiting, now):
            work.reserve(request)
    return work.decision()


def _may_reserve(policy: Policy, request: Request, waiting: Waiting, now: float) -> bool:
    threshold = policy.reserve_after_seconds
    if not policy.enabled or threshold is None or waiting.reason is WaitReason.UNSERVABLE:
        return False
    return now - request.arrival_s >= threshold
