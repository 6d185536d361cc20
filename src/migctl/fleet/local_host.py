"""The host protocol over migctl's library on this machine (real GPUs or a simulator).

Why this exists: until the ``Node`` API lands, the fleet needs one adapter from its
``Host`` protocol to what exists: the NVML backend (``open_backend(sim=...)``), the
engine's ``apply`` (plan, journal, verify, roll back; busy instances never destroyed)
and the lease store. This is the only fleet module that imports them; the ``Node`` will
replace it. Workers run either as real ``migctl run ... -- dask worker`` processes
(``subprocess=True``) or in this process (``InProcessWorker``, which then leases the
device itself, as ``migctl run`` would).

pynvml keeps one library per process, so the backend is opened for each operation under
a process-wide lock (as each CLI command opens it): several simulated hosts can then live
in one process, each with its own machine file. Paths follow the library's defaults
(``MIGCTL_LEASE_DB``, ``MIGCTL_STATE_DIR``), so the engine's busy check sees the
workers' leases. Imported by fleet users and tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from migctl.backends.base import Backend
from migctl.backends.select import open_backend
from migctl.catalog import Catalog, load_catalog
from migctl.engine.apply import apply
from migctl.engine.codec import checkpoint_of
from migctl.engine.current import read_current
from migctl.errors import MigctlError, NotFoundError
from migctl.fleet.host import Device, HostInventory
from migctl.fleet.workers import InProcessWorker, WorkerHandle, WorkerProcess, worker_command
from migctl.leases import Lease, LeaseOwner, LeaseStore
from migctl.model import GpuInstance, MigDevice
from migctl.planner import DesiredGi, DesiredLayout
from migctl.planner.fleet_model import FleetGpu, FleetInstance, GpuTarget
from migctl.tenancy.leasing import AcquireOptions, acquire, release_quietly
from migctl.tenancy.selection import DeviceSelection

log = logging.getLogger(__name__)
_NVML = threading.Lock()  # pynvml's library is global to the process


@dataclass
class _Running:
    uuid: str
    handle: WorkerHandle
    lease: Lease | None  # held by this process for an in-process worker


@dataclass
class LocalHost:
    """One machine as a fleet host: ``sim`` names a simulated machine (``--sim``), None the
    real one. ``command_prefix``: how to call migctl for subprocess workers."""

    host_name: str
    sim: str | None = None
    catalog: Catalog = field(default_factory=load_catalog)
    subprocess: bool = False
    command_prefix: Sequence[str] = ("migctl",)
    dask_command: Sequence[str] = ("dask", "worker")
    env: Mapping[str, str] = field(default_factory=dict)  # extra variables for workers
    _workers: dict[str, _Running] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.host_name

    def _store(self, backend: Backend | None = None) -> LeaseStore:
        """The lease store the host's ``migctl run`` workers use (the CLI's settings)."""
        from migctl.settings import Settings

        if backend is None:
            with self._backend() as opened:
                files_dir = opened.files_dir
        else:
            files_dir = backend.files_dir
        return LeaseStore(
            Settings.from_env(overrides={"sim": self.sim}).for_machine(files_dir).lease_db
        )

    @contextlib.contextmanager
    def _backend(self) -> Iterator[Backend]:
        with _NVML:
            backend = open_backend(self.sim, catalog=self.catalog)
            try:
                yield backend
            finally:
                backend.close()

    def inventory(self) -> HostInventory:
        with self._backend() as backend:
            return self._inventory(backend)

    def _inventory(self, backend: Backend) -> HostInventory:
        with self._store(backend) as store:
            leased = {lease.uuid for lease in store.list_leases(active_only=True)}
        ours = {running.uuid: name for name, running in self._workers.items()}
        gpus: list[FleetGpu] = []
        devices: list[Device] = []
        for info in backend.gpus():
            if not (info.mig and info.mig.current):
                continue
            model = backend.live_model(info.index)
            mig = backend.mig_devices(info.index)
            instances = []
            for gi in sorted(backend.gpu_instances(info.index), key=lambda g: g.id):
                device = _device_of(gi, mig, leased, ours)
                busy = device.busy if device else True  # a GI without a CI: leave it be
                instances.append(FleetInstance(gi.profile_name, gi.placement, busy, gi.id))
                if device is not None:
                    devices.append(device)
            gpus.append(FleetGpu(self.host_name, info.index, model, tuple(instances)))
        return HostInventory(self.host_name, tuple(gpus), tuple(devices))

    def apply(self, targets: Mapping[int, GpuTarget]) -> HostInventory:
        """Reshape the GPUs to their targets through the engine; raise if it did not."""
        with self._backend() as backend:
            desired: dict[int, DesiredLayout] = {}
            for gpu, target in sorted(targets.items()):
                current = read_current(backend, gpu, {})
                kept = {(i.placement, i.profile) for i in target.kept}
                base = checkpoint_of(current).gis
                gis = [g for g in base if (g.placement, g.profile) in kept]
                gis += [DesiredGi(n.profile, n.placement) for n in target.created]
                desired[gpu] = DesiredLayout(tuple(gis))
            outcome = apply(backend, desired)
            if outcome.error is not None:
                raise outcome.error
            log.info("%s: reshaped GPU %s", self.host_name, ", ".join(map(str, sorted(targets))))
            return self._inventory(backend)

    def worker_name(self, device: Device) -> str:
        return f"{self.host_name}:{device.uuid}"

    async def start_worker(self, device: Device, scheduler: str) -> str:
        name = self.worker_name(device)
        with self._backend() as backend:
            profile = backend.live_model(device.gpu).gi_profile(device.profile)
        if profile is None:
            raise NotFoundError(
                f"{self.host_name}: GPU {device.gpu} has no profile {device.profile}"
            )
        if self.subprocess:
            argv = worker_command(
                scheduler,
                device.uuid,
                profile,
                name,
                migctl=self.command_prefix,
                dask=self.dask_command,
            )
            log_path = os.path.join(tempfile.gettempdir(), f"migctl-worker-{os.getpid()}.log")
            handle: WorkerHandle = WorkerProcess.start(argv, {**os.environ, **self.env}, log_path)
            self._workers[name] = _Running(device.uuid, handle, None)
            return name
        lease = self._lease(device.uuid, name)
        try:
            handle = await InProcessWorker.start(scheduler, profile, name)
        except BaseException:
            self._release(lease)
            raise
        self._workers[name] = _Running(device.uuid, handle, lease)
        return name

    def _lease(self, uuid: str, job: str) -> Lease:
        owner = LeaseOwner.current(job=job, pid=os.getpid())
        with self._backend() as backend, self._store(backend) as store:
            selection = DeviceSelection(device_uuid=uuid)
            return acquire(backend, store, selection, owner, AcquireOptions())

    def _release(self, lease: Lease | None) -> None:
        if lease is not None:
            with self._store() as store:
                release_quietly(store, lease)

    async def stop_worker(self, name: str, grace_s: float) -> None:
        running = self._workers.pop(name, None)
        if running is None:
            return
        try:
            await running.handle.stop(grace_s)
        except (MigctlError, OSError, TimeoutError) as error:
            log.warning("%s: stopping worker %s: %s", self.host_name, name, error)
        finally:
            self._release(running.lease)

    def worker_names(self) -> list[str]:
        return sorted(self._workers)


def _device_of(
    gi: GpuInstance, mig: Sequence[MigDevice], leased: set[str], ours: Mapping[str, str]
) -> Device | None:
    """The GI's MIG device (its first CI), busy unless only our own worker holds it."""
    own = sorted((d for d in mig if d.gi_id == gi.id), key=lambda d: d.ci_id)
    if not own:
        return None
    worker = ours.get(own[0].uuid)
    foreign_lease = any(d.uuid in leased and d.uuid not in ours for d in own)
    busy = foreign_lease or any(d.processes for d in own) or len(own) > 1
    return Device(own[0].uuid, gi.gpu_index, gi.id, gi.profile_name, gi.placement, busy, worker)
