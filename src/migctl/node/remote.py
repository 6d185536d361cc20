"""RemoteNode: the Node protocol over a migctl daemon's REST API.

Why this module exists: on a shared server the daemon owns the GPUs; users, the CLI and the
fleet drive it with the very calls they would make on a ``LocalNode``. Each method sends its
arguments as the wire schema (``migctl.schemas``) and reads the answer back into migctl's values;
the daemon runs the same ``LocalNode`` method. Targets travel unresolved: the daemon resolves
them (a layout file is read here and sent as text). Changes run as daemon jobs and are waited for.
Errors come back as the class the daemon raised, with its exit code.

Differences a caller sees: ``hooks`` are refused (they would run as root on the daemon's host);
leases are owned by the identity the daemon authenticated (the socket's peer, or the token).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from migctl.errors import InvalidInputError, NotSupportedError

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel

    from migctl.backends.base import ModeChange
    from migctl.catalog import Catalog
    from migctl.client.http import DaemonClient
    from migctl.engine.hooks import Hooks
    from migctl.leases import Lease
    from migctl.model import ComputeInstance, GpuInstance, GpuModel, GpuProfiles
    from migctl.node.protocol import GpuSelection
    from migctl.reports import ApplyOutcome, CheckReport, Inventory, PlanReport, RecoverReport
    from migctl.schemas.base import WireRequest
    from migctl.schemas.layouts import Target
    from migctl.schemas.leases import LeaseRequest


M = TypeVar("M", bound="BaseModel")


def selection_text(gpus: GpuSelection) -> str | None:
    """A GPU selection as the ``gpus`` query/body value (None: all)."""
    if gpus is None or isinstance(gpus, str):
        return gpus
    return ",".join(str(g) for g in gpus)


class RemoteNode:
    """A machine driven through its daemon (see the module docstring)."""

    def __init__(
        self,
        client: DaemonClient,
        *,
        catalog: Catalog | None = None,
        catalog_files: Sequence[Path] = (),
    ) -> None:
        self.client = client
        self._catalog = catalog
        self._catalog_files = tuple(catalog_files)

    @property
    def description(self) -> str:
        return f"the migctl daemon at {self.client.where}"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from migctl.catalog import load_catalog

            self._catalog = load_catalog(self._catalog_files)
        return self._catalog

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteNode:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _params(self, gpus: GpuSelection) -> dict[str, Any]:
        text = selection_text(gpus)
        return {} if text is None else {"gpus": text}

    # -- reading ---------------------------------------------------------------------------

    def inventory(self, gpus: GpuSelection = None) -> Inventory:
        from migctl.schemas.machine import InventoryOut

        raw = self.client.request("GET", "/v1/inventory", params=self._params(gpus))
        return _read(InventoryOut, raw).value(self.catalog)

    def profiles(self, gpu: int | str) -> GpuProfiles:
        from migctl.schemas.reports import GpuProfilesOut

        raw = self.client.request("GET", f"/v1/gpus/{gpu}/profiles")
        return _read(GpuProfilesOut, raw).value()

    def models(self, gpus: GpuSelection = None) -> dict[int, GpuModel]:
        from migctl.schemas.machine import ModelsOut

        raw = self.client.request("GET", "/v1/models", params=self._params(gpus))
        return dict(_read(ModelsOut, raw).models)

    def metrics(self) -> str:
        return self.client.request_text("/metrics")

    # -- layouts ---------------------------------------------------------------------------

    def _layout_body(
        self, target: Target, gpus: GpuSelection, force: bool, **extra: object
    ) -> dict[str, Any]:
        from migctl.schemas.layouts import ApplyRequest, PlanRequest

        chosen = None if gpus is None else _indexes(self, gpus)
        model = ApplyRequest if extra else PlanRequest
        return _body(model, target=target, gpus=chosen, force=force, **extra)

    def plan(self, target: Target, *, gpus: GpuSelection = None, force: bool = False) -> PlanReport:
        from migctl.schemas.reports import PlanReportOut

        body = self._layout_body(target, gpus, force)
        return _read(PlanReportOut, self.client.request("POST", "/v1/plan", body=body)).value()

    def apply(
        self,
        target: Target,
        *,
        gpus: GpuSelection = None,
        force: bool = False,
        dry_run: bool = False,
        hooks: Hooks | None = None,
    ) -> ApplyOutcome:
        from migctl.reports import ApplyOutcome
        from migctl.schemas.reports import ApplyResultOut

        if hooks is not None and hooks.commands:
            raise NotSupportedError(
                "hooks are not available through the migctl daemon (they would run on the "
                "daemon's host as root)",
                hint="apply without --hooks, or run `migctl --local apply --hooks ...` as root "
                "on the GPU host",
            )
        if dry_run:
            report = self.plan(target, gpus=gpus, force=force)
            return ApplyOutcome(
                report.plans,
                dry_run=True,
                disturbs=report.disturbs,
                currents=report.currents,
                reasons=report.reasons,
            )
        body = self._layout_body(target, gpus, force, dry_run=False)
        result = self.client.run_job("POST", "/v1/apply", body)
        return _read(ApplyResultOut, result).outcome()

    def check(self, target: Target, *, gpus: GpuSelection = None) -> CheckReport:
        from migctl.schemas.reports import CheckReportOut

        body = self._layout_body(target, gpus, False)
        return _read(CheckReportOut, self.client.request("POST", "/v1/check", body=body)).value()

    def export(
        self, *, gpus: GpuSelection = None, format: str = "native", name: str = "exported"
    ) -> str:
        params = {**self._params(gpus), "format": format, "name": name}
        return self.client.request_text("/v1/export", params=params)

    def recover(self, *, rollback: bool = False) -> RecoverReport:
        from migctl.schemas.changes import RecoverRequest
        from migctl.schemas.reports import RecoverReportOut

        body = _body(RecoverRequest, rollback=rollback)
        result = self.client.run_job("POST", "/v1/recover", body)
        return _read(RecoverReportOut, result).value()

    def set_mode(
        self, gpus: GpuSelection, *, enabled: bool, force: bool = False
    ) -> list[ModeChange]:
        from migctl.schemas.changes import ModeRequest
        from migctl.schemas.reports import ModeChangesOut

        if gpus is not None and not isinstance(gpus, str) and not gpus:
            return []  # no GPU chosen: nothing to change (as on a LocalNode)
        body = _body(ModeRequest, gpus=selection_text(gpus) or None, enabled=enabled, force=force)
        result = self.client.run_job("POST", "/v1/mig-mode", body)
        return [c.value() for c in _read(ModeChangesOut, result).changes]

    # -- instances -------------------------------------------------------------------------

    def create_gpu_instances(
        self, gpu: int | str, profiles: str, *, with_ci: bool = False
    ) -> list[GpuInstance]:
        from migctl.schemas.changes import GpuInstancesRequest
        from migctl.schemas.machine import GpuInstancesOut

        body = _body(GpuInstancesRequest, profiles=profiles, with_ci=with_ci)
        result = self.client.run_job("POST", f"/v1/gpus/{gpu}/gpu-instances", body)
        return [gi.value() for gi in _read(GpuInstancesOut, result).gpu_instances]

    def destroy_gpu_instances(self, gpu: int | str, ids: Sequence[int] | None) -> list[int]:
        from migctl.schemas.machine import DestroyedOut

        body = _ids_body(ids)
        result = self.client.run_job("POST", f"/v1/gpus/{gpu}/gpu-instances/destroy", body)
        return list(_read(DestroyedOut, result).ids)

    def create_compute_instances(
        self, gpu: int | str, gi: int, profiles: str | None = None
    ) -> list[ComputeInstance]:
        from migctl.schemas.changes import ComputeInstancesRequest
        from migctl.schemas.machine import ComputeInstancesOut

        path = f"/v1/gpus/{gpu}/gpu-instances/{gi}/compute-instances"
        body = _body(ComputeInstancesRequest, profiles=profiles)
        result = self.client.run_job("POST", path, body)
        found = _read(ComputeInstancesOut, result).compute_instances
        return [ci.value() for ci in found]

    def destroy_compute_instances(
        self, gpu: int | str, gi: int, ids: Sequence[int] | None
    ) -> list[int]:
        from migctl.schemas.machine import DestroyedOut

        path = f"/v1/gpus/{gpu}/gpu-instances/{gi}/compute-instances/destroy"
        result = self.client.run_job("POST", path, _ids_body(ids))
        return list(_read(DestroyedOut, result).ids)

    # -- leases ----------------------------------------------------------------------------

    def acquire(self, request: LeaseRequest) -> Lease:
        from migctl.schemas.leases import LeaseOut

        wait = request.wait_seconds + 30.0  # the daemon may wait that long before answering
        body = request.model_dump(mode="json", exclude_defaults=True)  # only what is asked
        raw = self.client.request("POST", "/v1/leases", body=body, timeout_s=wait)
        return _read(LeaseOut, raw).value()

    def release(self, target: int | str, *, admin: bool = False) -> Lease:
        from migctl.schemas.leases import LeaseOut

        params = {"admin": "true" if admin else "false"}  # as the local release: say which
        raw = self.client.request("DELETE", f"/v1/leases/{target}", params=params)
        return _read(LeaseOut, raw).value()

    def renew(self, target: int | str, ttl_seconds: float | None = None) -> Lease:
        from migctl.schemas.leases import LeaseOut, RenewRequest

        body = _body(RenewRequest, ttl_seconds=ttl_seconds)
        raw = self.client.request("POST", f"/v1/leases/{target}/renew", body=body)
        return _read(LeaseOut, raw).value()

    def leases(self, *, history: bool = False, mine: bool = False) -> list[Lease]:
        from migctl.schemas.leases import LeaseOut

        params = {"history": str(history).lower(), "mine": str(mine).lower()}
        raw = self.client.request("GET", "/v1/leases", params=params)
        return [_read(LeaseOut, item).value() for item in raw]


def _body(model: type[WireRequest], **fields: object) -> dict[str, Any]:
    """A request body checked by its schema here; a bad value is ``InvalidInputError``."""
    from pydantic import ValidationError

    try:
        return _read(model, fields).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInputError(
            f"invalid {model.__name__}: {problems}",
            hint="see the argument's limits in migctl.schemas",
            context={"schema": model.__name__},
        ) from None


def _ids_body(ids: Sequence[int] | None) -> dict[str, Any]:
    from migctl.schemas.changes import InstanceIdsRequest

    return _body(InstanceIdsRequest, ids=None if ids is None else list(ids))


def _indexes(node: RemoteNode, gpus: GpuSelection) -> list[int]:
    """A selection as indexes (names and UUIDs resolved against the daemon's inventory)."""
    if gpus is not None and not isinstance(gpus, str):
        return sorted(set(gpus))
    from migctl.inventory import select_gpus

    infos = [view.info for view in node.inventory().gpus]
    return select_gpus(infos, gpus)


def _read(model: type[M], raw: object) -> M:
    """``raw`` as ``model``; an answer of another shape is a clear error, not a crash."""
    from pydantic import ValidationError

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        from migctl.errors import DriverError

        raise DriverError(
            f"the daemon answered a {model.__name__} this migctl cannot read: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
            hint="the daemon and this migctl are probably different versions: upgrade the older",
            context={"schema": model.__name__},
        ) from exc
