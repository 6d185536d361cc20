"""A read-only backend over the migctl daemon, so that read verbs work where a daemon owns the GPUs.

Why this exists: on a shared server ``nvidia-smi mig -lgip`` works for any user, so
``migctl profiles``, ``gi list``, ``ci list``, ``export``, ``assert`` and ``catalog check``
must too, also when a daemon owns the GPUs and the user is not root. They are written
against the ``Backend`` protocol; this class answers its read methods from one ``GET
/v1/inventory`` (GPUs, instances, MIG devices, processes) and ``GET /v1/gpus/N/profiles``
(live geometry and free counts, read once per GPU), so each verb prints what it prints
locally. Every change is refused with a clear message (exit 7) before anything happens:
changes go through the daemon's own verbs (``apply``, ``mode``, ``lease``). Only
``cli.session`` imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from migctl.catalog.codec import ci_from_dict, model_from_dict
from migctl.cli.remote_view import Snapshot, read_snapshot
from migctl.errors import MigctlError, NotFoundError, NotSupportedError
from migctl.inventory import GpuProfiles, GpuView
from migctl.model import (
    CiProfileStatus,
    ComputeInstance,
    GpuInfo,
    GpuInstance,
    GpuModel,
    GpuProcess,
    MigDevice,
    Placement,
    ProfileStatus,
)

if TYPE_CHECKING:
    from migctl.backends.base import ModeChange
    from migctl.catalog import Catalog
    from migctl.server.client import ServiceClient


class DaemonReader:
    """The ``Backend`` read methods, answered by the daemon; the change methods refuse."""

    def __init__(self, client: ServiceClient, catalog: Catalog) -> None:
        self._client = client
        self._catalog = catalog
        self._snapshot: Snapshot | None = None
        self._profiles: dict[int, GpuProfiles] = {}

    # --- what the verbs read ----------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return True

    @property
    def description(self) -> str:
        return self.snapshot.backend

    @property
    def files_dir(self) -> Path | None:
        """The daemon's machine keeps its files on the daemon's side."""
        return None

    def close(self) -> None:
        """Nothing to close: the session closes the daemon client."""

    def driver_version(self) -> str:
        raise NotSupportedError(
            f"the migctl daemon at {self._client.where} does not report the driver version",
            hint="`migctl status` names the daemon's backend and driver",
        )

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = read_snapshot(self._client, self._catalog)
        return self._snapshot

    def gpus(self) -> list[GpuInfo]:
        return [view.info for view in self.snapshot.views]

    def gpu(self, index: int) -> GpuInfo:
        return self._view(index).info

    def catalog_model(self, index: int) -> GpuModel | None:
        return self._view(index).model

    def live_model(self, index: int) -> GpuModel:
        return self._profiles_of(index).model

    def gi_profiles(self, index: int) -> list[ProfileStatus]:
        return self._profiles_of(index).gi_profiles

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        return [instance.gi for instance in self._view(index).instances]

    def ci_profiles(self, index: int, gi_id: int) -> list[CiProfileStatus]:
        found = self._profiles_of(index).ci_profiles
        if gi_id not in found:
            raise NotFoundError(
                f"GPU {index} has no GPU instance {gi_id}",
                hint="see the GPU instances with `migctl gi list`",
                context={"gpu": index, "gi": gi_id},
            )
        return found[gi_id]

    def compute_instances(self, index: int, gi_id: int) -> list[ComputeInstance]:
        return [ci for i in self._view(index).instances if i.gi.id == gi_id for ci in i.cis]

    def mig_devices(self, index: int) -> list[MigDevice]:
        return list(self._view(index).devices)

    def processes(self, index: int) -> list[GpuProcess]:
        return [
            GpuProcess(p.pid, p.used_memory_mib, p.gi_id, p.ci_id)
            for p in self._view(index).processes
        ]

    # --- changes: not through this reader ---------------------------------------------

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> NoReturn:
        self._refuse("creating a GPU instance")

    def destroy_gpu_instance(self, index: int, gi_id: int) -> NoReturn:
        self._refuse("destroying a GPU instance")

    def create_compute_instance(
        self, index: int, gi_id: int, profile_id: int, placement: Placement
    ) -> NoReturn:
        self._refuse("creating a compute instance")

    def destroy_compute_instance(self, index: int, gi_id: int, ci_id: int) -> NoReturn:
        self._refuse("destroying a compute instance")

    def set_mig_mode(self, index: int, enabled: bool) -> ModeChange:
        self._refuse("changing MIG mode")

    # --- helpers ------------------------------------------------------------------------

    def _view(self, index: int) -> GpuView:
        for view in self.snapshot.views:
            if view.info.index == index:
                return view
        raise NotFoundError(
            f"the migctl daemon at {self._client.where} shows no GPU {index}",
            hint="see the GPUs with `migctl list`",
            context={"gpu": index},
        )

    def _profiles_of(self, index: int) -> GpuProfiles:
        if index not in self._profiles:
            self._profiles[index] = _profiles_from_out(self._read_profiles(index))
        return self._profiles[index]

    def _read_profiles(self, index: int) -> dict[str, Any]:
        try:
            found: dict[str, Any] = self._client.request("GET", f"/v1/gpus/{index}/profiles")
        except MigctlError as error:
            if error.context.get("http_status") == 404:  # no such route: an older daemon
                raise NotSupportedError(
                    f"the migctl daemon at {self._client.where} does not serve GPU profiles",
                    hint="upgrade the daemon, or run this as root on the GPU host with --local",
                ) from error
            raise
        return found

    def _refuse(self, what: str) -> NoReturn:
        raise NotSupportedError(
            f"{what} has no daemon form: this invocation reads the GPUs through the migctl "
            f"daemon at {self._client.where}, which owns them; nothing was changed",
            hint="change the GPUs through the daemon with `migctl apply` (admins), or run on the "
            "GPU host as root with --local",
            context={"daemon": self._client.where},
        )


def _profiles_from_out(out: dict[str, Any]) -> GpuProfiles:
    index = int(out["gpu_index"])
    model = model_from_dict(out["model"], origin="the migctl daemon")
    by_id = {p.id: p for p in model.gi_profiles}
    gi_statuses = [
        ProfileStatus(
            index, by_id[int(item["profile"]["id"])], int(item["free"]), int(item["total"])
        )
        for item in out["gi_profiles"]
    ]
    ci_statuses = {
        int(gi["gi_id"]): [
            CiProfileStatus(
                index,
                int(gi["gi_id"]),
                ci_from_dict(item["profile"]),
                int(item["free"]),
                int(item["total"]),
            )
            for item in gi["profiles"]
        ]
        for gi in out["ci_profiles"]
    }
    return GpuProfiles(index, model, gi_statuses, ci_statuses)
