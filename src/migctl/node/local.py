"""LocalNode: this host's GPUs (real NVML or a simulated machine), its leases and layouts.

Why this module exists: every verb does its work here, once. The CLI calls it directly (or a
``RemoteNode`` that reaches the daemon's own ``LocalNode``); the daemon's routes call it; Python
users call it. It holds one backend, the lease store, the apply journal and the CDI spec of one
machine, all found through its :class:`~migctl.settings.Settings`; after every change of MIG
devices it refreshes a CDI spec in use.

Identity: lease calls (``node.local_leases``) take the caller's identity from this process
(``LeaseOwner.current``); the daemon passes the principal it authenticated (``owner=``,
``user=``, ``admin=``), which only a ``LocalNode`` accepts. MIG mode: ``node.modes``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from migctl.backends.base import Backend, ModeChange
from migctl.catalog import Catalog
from migctl.errors import NotSupportedError, UsageError
from migctl.model import ComputeInstance, GpuInstance, GpuModel, GpuProfiles
from migctl.node.device_cache import CandidateCache
from migctl.node.local_leases import LocalLeases
from migctl.node.protocol import GpuSelection
from migctl.settings import Settings

if TYPE_CHECKING:
    from migctl.engine.fence import DestroyFence
    from migctl.engine.files import MachineFiles
    from migctl.engine.hooks import Hooks
    from migctl.engine.journal import Journal
    from migctl.layout import MachineGpu
    from migctl.node.targets import Resolved
    from migctl.planner import DesiredLayout
    from migctl.reports import ApplyOutcome, CheckReport, Inventory, PlanReport, RecoverReport
    from migctl.schemas.layouts import Target

log = logging.getLogger(__name__)


class LocalNode(LocalLeases):
    """One machine, worked on directly (see the module docstring)."""

    def __init__(self, settings: Settings, backend: Backend, catalog: Catalog) -> None:
        self.settings = settings
        self.backend = backend
        self.catalog = catalog
        self._store = None
        self.device_cache = CandidateCache()  # kept 0 s: the daemon sets its device_cache_s

    # -- life cycle ------------------------------------------------------------------------

    @property
    def description(self) -> str:
        return self.backend.description

    @property
    def simulated(self) -> bool:
        return self.settings.sim is not None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.backend.close()

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def files(self) -> MachineFiles:
        """This machine's lease database and journal directory, for the engine."""
        from migctl.engine.files import MachineFiles

        return MachineFiles(self.settings.lease_db, self.settings.state_dir)

    def journal(self) -> Journal:
        from migctl.engine.apply import journal_for

        return journal_for(self.backend, self.files)

    def select(self, gpus: GpuSelection) -> list[int]:
        """GPU indexes of a selection (see ``node.protocol``), checked against the machine."""
        from migctl.inventory import resolve_gpus

        if gpus is None or isinstance(gpus, str):
            return resolve_gpus(self.backend, gpus)
        known = {g.index for g in self.backend.gpus()}
        missing = sorted(set(gpus) - known)
        if missing:
            return resolve_gpus(self.backend, ",".join(map(str, missing)))  # raises NotFound
        return sorted(set(gpus))

    def one_gpu(self, gpu: int | str) -> int:
        chosen = self.select(str(gpu))
        if len(chosen) != 1:
            raise UsageError(f"{gpu!r} names {len(chosen)} GPUs", hint="name one GPU")
        return chosen[0]

    # -- reading ---------------------------------------------------------------------------

    def inventory(self, gpus: GpuSelection = None) -> Inventory:
        from migctl.inventory import machine_view
        from migctl.reports import Inventory

        chosen = self.select(gpus)
        views = machine_view(self.backend, chosen)
        soft = self.soft_devices(chosen)
        if not soft and not any(view.devices for view in views):  # no device: no lease
            return Inventory(self.description, views, [], [])
        return Inventory(self.description, views, self.active_leases(), soft)

    def profiles(self, gpu: int | str) -> GpuProfiles:
        index = self.one_gpu(gpu)
        info = self.backend.gpu(index)
        if info.mig is None:
            raise NotSupportedError(
                f"GPU {index} ({info.name}) does not support MIG",
                hint="see `migctl catalog` for the GPUs that do",
                context={"gpu": index},
            )
        instances = self.backend.gpu_instances(index) if info.mig.current else []
        return GpuProfiles(
            index,
            self.backend.live_model(index),
            self.backend.gi_profiles(index),
            {gi.id: self.backend.ci_profiles(index, gi.id) for gi in instances},
        )

    def models(self, gpus: GpuSelection = None) -> dict[int, GpuModel]:
        found = {i: self.backend.live_model(i) for i in self.select(gpus)}
        return {i: model for i, model in found.items() if model.mig_capable}

    def machine(self) -> list[MachineGpu]:
        """Every GPU with its live model and PCI ids, GPUs without MIG included (a layout file
        is judged against all of them, as mig-parted's ``device-filter`` is)."""
        from migctl.layout import MachineGpu

        return [
            MachineGpu(
                info.index,
                self.backend.live_model(info.index),
                info.pci_device_id or None,
                info.pci_subsystem_id,
            )
            for info in self.backend.gpus()
        ]

    def metrics(self) -> str:
        from migctl.metrics import render

        return render(self.backend, self.settings.lease_db, soft=self.soft_devices()).decode()

    # -- layouts ---------------------------------------------------------------------------

    def resolve(self, target: Target, gpus: GpuSelection = None) -> Resolved:
        """What ``target`` asks of each chosen GPU (see ``node.targets``)."""
        from migctl.node.targets import resolve_target

        chosen = None if gpus is None else self.select(gpus)
        return resolve_target(target, self.machine(), chosen, self.catalog)

    def _targets(self, found: Resolved) -> dict[int, DesiredLayout]:
        """The resolved targets; a mig-parted config keeps a GPU whose CI counts match."""
        if not found.counts_only or not found.targets:
            return found.targets
        from migctl.engine.export import current_layouts
        from migctl.layout.bridge import keep_matching_counts

        current = current_layouts(self.backend, sorted(found.targets))
        models = {g: self.backend.live_model(g) for g in found.targets}
        return keep_matching_counts(found.targets, current, models)

    def plan(self, target: Target, *, gpus: GpuSelection = None, force: bool = False) -> PlanReport:
        from migctl.engine.apply import plan_machine
        from migctl.engine.disturb import disturbed
        from migctl.reports import PlanReport

        found = self.resolve(target, gpus)
        files = self.files
        plans, currents = plan_machine(self.backend, self._targets(found), force=force, files=files)
        report = PlanReport(plans, currents, found.reasons, disturbed(self.backend, plans, files))
        if found.soft is None:
            return report
        from migctl.node.soft import plan_with_soft

        return plan_with_soft(self.backend, self.soft_store(), self.mps, found.soft, report)

    def apply(
        self,
        target: Target,
        *,
        gpus: GpuSelection = None,
        force: bool = False,
        dry_run: bool = False,
        hooks: Hooks | None = None,
    ) -> ApplyOutcome:
        from migctl.engine.apply import apply

        found = self.resolve(target, gpus)
        targets = self._targets(found)
        if found.soft is not None and not dry_run:
            self._soft_preflight(found.soft, targets, force)
        outcome = apply(
            self.backend,
            targets,
            force=force,
            dry_run=dry_run,
            hooks=hooks,
            journal=self.journal(),
            files=self.files,
        )
        outcome.reasons = found.reasons
        self._after_change(outcome.changed or outcome.rolled_back)
        if found.soft is not None:
            from migctl.node.soft import apply_with_soft

            apply_with_soft(self, found.soft, outcome, force=force)
        return outcome

    def check(self, target: Target, *, gpus: GpuSelection = None) -> CheckReport:
        from migctl.engine.assertion import check
        from migctl.reports import CheckReport

        found = self.resolve(target, gpus)
        differences = check(self.backend, self._targets(found), self.files)
        differences.update({g: [] for g in found.compared if g not in differences})
        if found.soft is not None:
            from migctl.node.soft import soft_differences

            more = soft_differences(self.backend, self.soft_store(), self.mps, found.soft)
            for gpu, lines in more.items():
                differences.setdefault(gpu, []).extend(lines)
        differences.update(found.unmatched)
        return CheckReport(dict(sorted(differences.items())), found.check_notes)

    def export(
        self, *, gpus: GpuSelection = None, format: str = "native", name: str = "exported"
    ) -> str:
        from migctl.engine.export import current_layouts
        from migctl.layout.bridge import export_text

        if format not in {"native", "mig-parted"}:
            raise UsageError(f"unknown format {format!r}", hint="native or mig-parted")
        layouts = current_layouts(self.backend, self.select(gpus))
        models = {g: self.backend.live_model(g) for g in layouts}
        store = self.soft_store()
        shares = None
        if store is not None:
            from migctl.engine.soft_apply import current_shares

            shares = current_shares(self.backend, store.soft_ledger(), sorted(layouts))
        return export_text(layouts, models, format, name, shares)

    def recover(self, *, rollback: bool = False) -> RecoverReport:
        from migctl.engine.recover import recover
        from migctl.reports import InterruptedApply, RecoverReport

        result = recover(self.backend, rollback=rollback, journal=self.journal(), files=self.files)
        found = result.found
        interrupted = (
            None
            if found is None
            else InterruptedApply(
                found.started_at, found.pid, found.done, len(found.ops), found.machine
            )
        )
        if result.outcome is not None:
            self._after_change(result.outcome.changed or result.outcome.rolled_back)
        return RecoverReport(result.mode, interrupted, result.outcome)

    def set_mode(
        self, gpus: GpuSelection, *, enabled: bool, force: bool = False
    ) -> list[ModeChange]:
        from migctl.node.modes import set_mode

        return set_mode(self, gpus, enabled=enabled, force=force)

    def _after_change(self, changed: bool) -> None:
        """MIG devices changed: keep a CDI spec in use current (a failure is logged), and stop
        the MPS daemons of MIG devices that are gone."""
        if not changed:
            return
        self.device_cache.invalidate()
        from migctl.errors import MigctlError
        from migctl.tenancy.cdi import refresh_if_in_use

        if (self.settings.state_dir / "mps").is_dir():
            _repair_mps(self)

        settings = self.settings
        try:
            path = refresh_if_in_use(
                self.backend,
                settings.cdi_path,
                explicit="cdi_path" in settings.explicit,
                proc_root=settings.proc_root,
            )
        except (MigctlError, OSError) as error:
            log.error("the CDI spec could not be refreshed: %s", error)
            return
        if path is not None:
            log.info("refreshed the CDI spec %s", path)

    # -- instances -------------------------------------------------------------------------

    def create_gpu_instances(
        self, gpu: int | str, profiles: str, *, with_ci: bool = False
    ) -> list[GpuInstance]:
        from migctl.workflow import create_gpu_instances, parse_profile_requests

        index = self.one_gpu(gpu)
        requests = parse_profile_requests(self.backend.live_model(index), profiles, index)
        created = create_gpu_instances(self.backend, index, requests, with_ci=with_ci)
        self._after_change(bool(created))
        return [item.gi for item in created]

    def destroy_gpu_instances(self, gpu: int | str, ids: Sequence[int] | None) -> list[int]:
        """Destroy GIs; one with a leased MIG device is refused like a busy one."""
        from migctl.workflow import destroy_gpu_instances

        with self._fence() as fence:
            destroyed = destroy_gpu_instances(self.backend, self.one_gpu(gpu), ids, fence)
        self._after_change(bool(destroyed))
        return destroyed

    def create_compute_instances(
        self, gpu: int | str, gi: int, profiles: str | None = None
    ) -> list[ComputeInstance]:
        from migctl.workflow import create_compute_instances

        tokens = [t.strip() for t in profiles.split(",")] if profiles else None
        created = create_compute_instances(self.backend, self.one_gpu(gpu), gi, tokens)
        self._after_change(bool(created))
        return created

    def destroy_compute_instances(
        self, gpu: int | str, gi: int, ids: Sequence[int] | None
    ) -> list[int]:
        from migctl.workflow import destroy_compute_instances

        with self._fence() as fence:
            destroyed = destroy_compute_instances(self.backend, self.one_gpu(gpu), gi, ids, fence)
        self._after_change(bool(destroyed))
        return destroyed

    @contextlib.contextmanager
    def _fence(self) -> Iterator[DestroyFence]:
        """The lease store's fence around destroys (a leased device is never destroyed)."""
        from migctl.engine.fence import DestroyFence

        fence = DestroyFence(self.backend, self.settings.lease_db)
        try:
            yield fence
        finally:
            fence.close()


def open_local(settings: Settings, catalog: Catalog | None = None) -> LocalNode:
    """The LocalNode of ``settings``: the simulated machine it names, else the real driver."""
    from migctl.backends.select import open_backend
    from migctl.catalog import load_catalog

    catalog = catalog or load_catalog(settings.catalog_files)
    backend = open_backend(
        settings.sim, read_only=settings.read_only, catalog=catalog, sim_dir=settings.sim_dir
    )
    node = LocalNode(settings.for_machine(backend.files_dir), backend, catalog)
    mps_dir = node.settings.state_dir / "mps"  # no MPS directory: nothing to repair (and the
    if not settings.read_only and mps_dir.is_dir():  # MPS modules stay unimported)
        _repair_mps(node)
    return node


def _repair_mps(node: LocalNode) -> None:
    """Bring the MPS daemons to what the soft leases need; a damaged lease database is left
    for the verb that needs it to refuse (a view never fails for it)."""
    from migctl.errors import MigctlError
    from migctl.node.soft import repair

    try:
        for done in repair(node.backend, node.soft_store(), node.mps):
            log.info("%s", done)
    except MigctlError as error:
        log.warning("MPS daemons not checked: %s", error.message)
