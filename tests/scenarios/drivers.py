"""Three ways to drive the same scenarios: the library, the CLI, and the CLI through a daemon.

Why this exists: issue 13 asks that one scenario suite run through the library (a
``LocalNode``), the command line (``-o json``, in this process) and the command line through a
real ``migctl serve`` (a ``RemoteNode``), and demand the same results and exit codes. Each driver
offers the same small verbs and reports a failure as the error's *kind* (``in_use``,
``insufficient_resources``...); the CLI drivers also check that the exit code is the one that
kind documents. ``control()`` is the simulator's control panel of the very machine a driver
changes (processes that hold devices, injected NVML faults). Test-only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from migctl.catalog import load_catalog
from migctl.cli.main import run
from migctl.errors import ALL_ERROR_CLASSES, MigctlError
from migctl.node.local import LocalNode
from migctl.node.open import open_node
from migctl.schemas.layouts import SplitTarget
from migctl.schemas.leases import LeaseRequest
from migctl.sim import SimControl, open_sim
from tests.server.daemon import Daemon

EXIT_BY_KIND = {cls.kind: cls.exit_code for cls in ALL_ERROR_CLASSES}
Instance = tuple[str, int, int]  # profile, start, size


@dataclass(frozen=True)
class Outcome:
    ok: bool
    kind: str | None = None
    data: Any = None


class Driver(Protocol):
    name: str

    def control(self) -> SimControl: ...
    def enable(self, gpu: int) -> Outcome: ...
    def disable(self, gpu: int) -> Outcome: ...
    def create(self, gpu: int, profiles: str, with_ci: bool = True) -> Outcome: ...
    def destroy(self, gpu: int, gi_ids: list[int] | None) -> Outcome: ...
    def split(self, gpu: int, n: int) -> Outcome: ...
    def already_split(self, gpu: int, n: int) -> bool: ...
    def lease(self, profile: str) -> Outcome: ...
    def release(self, lease_id: int) -> Outcome: ...
    def instances(self, gpu: int) -> list[Instance]: ...
    def devices(self, gpu: int) -> list[dict[str, Any]]: ...


class LibraryDriver:
    """``migctl.open_node``: a LocalNode on the simulated machine, opened for each call."""

    name = "library"

    def __init__(self, machine: str, sim_dir: Path, read_only: bool = False) -> None:
        self.machine, self.sim_dir, self.read_only = machine, sim_dir, read_only

    def control(self) -> SimControl:
        return SimControl(open_sim(self.machine, load_catalog(), self.sim_dir))

    def _call(self, action: Callable[[LocalNode], Any]) -> Outcome:
        try:
            with open_node(self.machine, read_only=self.read_only, sim_dir=self.sim_dir) as node:
                return Outcome(True, data=action(node))
        except MigctlError as error:
            return Outcome(False, error.kind)

    def enable(self, gpu: int) -> Outcome:
        return self._call(lambda n: n.set_mode([gpu], enabled=True))

    def disable(self, gpu: int) -> Outcome:
        return self._call(lambda n: n.set_mode([gpu], enabled=False))

    def create(self, gpu: int, profiles: str, with_ci: bool = True) -> Outcome:
        return self._call(lambda n: n.create_gpu_instances(gpu, profiles, with_ci=with_ci))

    def destroy(self, gpu: int, gi_ids: list[int] | None) -> Outcome:
        return self._call(lambda n: n.destroy_gpu_instances(gpu, gi_ids))

    def split(self, gpu: int, n: int) -> Outcome:
        """An apply reports its failure in its outcome (after the rollback); as the CLI does,
        the driver reports it as the failure."""
        outcome = self._call(lambda node: node.apply(SplitTarget(n=n), gpus=[gpu]))
        failure = outcome.data.failure if outcome.ok else None
        return Outcome(False, failure.kind) if failure is not None else outcome

    def already_split(self, gpu: int, n: int) -> bool:
        target = SplitTarget(n=n)
        return bool(self._call(lambda node: node.apply(target, gpus=[gpu], dry_run=True)).data.noop)

    def lease(self, profile: str) -> Outcome:
        outcome = self._call(lambda n: n.acquire(LeaseRequest(profile=profile)))
        return Outcome(True, data=outcome.data.lease_id) if outcome.ok else outcome

    def release(self, lease_id: int) -> Outcome:
        return self._call(lambda n: n.release(lease_id))

    def instances(self, gpu: int) -> list[Instance]:
        views = self._call(lambda n: n.inventory([gpu]).gpus).data
        return sorted(
            (i.gi.profile_name, i.gi.placement.start, i.gi.placement.size)
            for view in views
            for i in view.instances
        )

    def devices(self, gpu: int) -> list[dict[str, Any]]:
        views = self._call(lambda n: n.inventory([gpu]).gpus).data
        return [
            {"uuid": d.uuid, "gi_id": d.gi_id, "profile": d.ci_profile}
            for view in views
            for d in view.devices
        ]


class CliDriver:
    """``migctl -o json ...`` in this process, on the simulated machine (``--sim``)."""

    name = "cli"

    def __init__(
        self,
        machine: str,
        sim_dir: Path,
        capsys: pytest.CaptureFixture[str],
        read_only: bool = False,
    ) -> None:
        self.machine, self.sim_dir, self.capsys, self.read_only = (
            machine,
            sim_dir,
            capsys,
            read_only,
        )

    def control(self) -> SimControl:
        return SimControl(open_sim(self.machine, load_catalog(), self.sim_dir))

    def flags(self) -> list[str]:
        return ["--sim", self.machine]

    def invoke(self, *args: str) -> Outcome:
        self.capsys.readouterr()
        flags = [*self.flags(), "-o", "json", *(["--read-only"] if self.read_only else [])]
        code = run([*flags, *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        if code == 0:
            return Outcome(True, data=json.loads(out) if out.strip() else None)
        error = json.loads(err.strip().splitlines()[-1])
        assert error["exit_code"] == code == EXIT_BY_KIND[error["error"]], (code, error)
        return Outcome(False, error["error"])

    def enable(self, gpu: int) -> Outcome:
        return self.invoke("mode", "enable", "-i", str(gpu))

    def disable(self, gpu: int) -> Outcome:
        return self.invoke("mode", "disable", "-i", str(gpu))

    def create(self, gpu: int, profiles: str, with_ci: bool = True) -> Outcome:
        return self.invoke("gi", "create", profiles, "-i", str(gpu), *(["-C"] if with_ci else []))

    def destroy(self, gpu: int, gi_ids: list[int] | None) -> Outcome:
        ids = ["--all"] if gi_ids is None else [a for i in gi_ids for a in ("--id", str(i))]
        return self.invoke("gi", "destroy", "-i", str(gpu), *ids)

    def split(self, gpu: int, n: int) -> Outcome:
        return self.invoke("split", str(n), "-i", str(gpu))

    def already_split(self, gpu: int, n: int) -> bool:
        outcome = self.invoke("apply", "--split", str(n), "-i", str(gpu), "--dry-run")
        return bool(outcome.data["noop"])

    def lease(self, profile: str) -> Outcome:
        outcome = self.invoke("lease", "acquire", "-p", profile)
        return Outcome(True, data=outcome.data["lease"]["lease_id"]) if outcome.ok else outcome

    def release(self, lease_id: int) -> Outcome:
        return self.invoke("lease", "release", str(lease_id))

    def instances(self, gpu: int) -> list[Instance]:
        data = self.invoke("gi", "list", "-i", str(gpu)).data
        return sorted(
            (g["profile"], g["placement"]["start"], g["placement"]["size"])
            for g in data["gpu_instances"]
        )

    def devices(self, gpu: int) -> list[dict[str, Any]]:
        data = self.invoke("list", "-i", str(gpu)).data
        return [
            {"uuid": d["uuid"], "gi_id": d["gi_id"], "profile": d["ci_profile"]}
            for d in data["gpus"][0]["mig_devices"]
        ]


class DaemonCliDriver(CliDriver):
    """``migctl -o json ...`` in this process, through a real daemon (``MIGCTL_URL``)."""

    name = "daemon"

    def __init__(
        self,
        daemon: Daemon,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        read_only: bool = False,
    ) -> None:
        super().__init__(daemon.machine, daemon.sim_dir, capsys, read_only)
        self.daemon = daemon
        monkeypatch.setenv("MIGCTL_URL", f"unix://{daemon.socket_path}")

    def flags(self) -> list[str]:
        return []  # the daemon's machine, not a simulator of this process
