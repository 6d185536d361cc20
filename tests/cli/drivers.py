"""Two ways to drive the same scenarios: the library API and the CLI (``--output json``).

Why this exists: the core issue asks for one scenario suite that runs through the library
and through the CLI. Each driver exposes the same small verbs and reports failures as the
error *kind* (``in_use``, ``insufficient_resources``...), so the scenarios assert the same
outcomes both ways; the CLI driver also checks that the exit code matches the kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from migctl.backends.select import open_backend, open_sim_control
from migctl.cli.main import run
from migctl.errors import ALL_ERROR_CLASSES, MigctlError
from migctl.inventory import machine_view
from migctl.workflow import (
    create_gpu_instances,
    destroy_gpu_instances,
    parse_profile_requests,
    set_mode,
)

EXIT_BY_KIND = {cls.kind: cls.exit_code for cls in ALL_ERROR_CLASSES}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    kind: str | None = None
    data: Any = None


class Driver(Protocol):
    name: str

    def enable(self, gpu: int) -> Outcome: ...
    def disable(self, gpu: int) -> Outcome: ...
    def create(self, gpu: int, profiles: str, with_ci: bool = True) -> Outcome: ...
    def destroy(self, gpu: int, gi_ids: list[int] | None) -> Outcome: ...
    def instances(self, gpu: int) -> list[tuple[str, int, int]]: ...
    def devices(self, gpu: int) -> list[dict[str, Any]]: ...


class LibraryDriver:
    name = "library"

    def __init__(self, machine: str, read_only: bool = False) -> None:
        self.machine = machine
        self.read_only = read_only

    def _call(self, action: Any) -> Outcome:
        backend = open_backend(self.machine, read_only=self.read_only)
        try:
            return Outcome(True, data=action(backend))
        except MigctlError as error:
            return Outcome(False, error.kind)
        finally:
            backend.close()

    def enable(self, gpu: int) -> Outcome:
        return self._call(lambda b: set_mode(b, [gpu], True))

    def disable(self, gpu: int) -> Outcome:
        return self._call(lambda b: set_mode(b, [gpu], False))

    def create(self, gpu: int, profiles: str, with_ci: bool = True) -> Outcome:
        def action(b: Any) -> Any:
            requests = parse_profile_requests(b.live_model(gpu), profiles, gpu)
            return create_gpu_instances(b, gpu, requests, with_ci=with_ci)

        return self._call(action)

    def destroy(self, gpu: int, gi_ids: list[int] | None) -> Outcome:
        return self._call(lambda b: destroy_gpu_instances(b, gpu, gi_ids))

    def instances(self, gpu: int) -> list[tuple[str, int, int]]:
        outcome = self._call(lambda b: b.gpu_instances(gpu))
        return sorted((g.profile_name, g.placement.start, g.placement.size) for g in outcome.data)

    def devices(self, gpu: int) -> list[dict[str, Any]]:
        outcome = self._call(lambda b: machine_view(b, [gpu])[0].devices)
        return [{"uuid": d.uuid, "gi_id": d.gi_id, "profile": d.ci_profile} for d in outcome.data]


class CliDriver:
    name = "cli"

    def __init__(
        self, machine: str, capsys: pytest.CaptureFixture[str], read_only: bool = False
    ) -> None:
        self.machine = machine
        self.capsys = capsys
        self.read_only = read_only

    def invoke(self, *args: str) -> Outcome:
        self.capsys.readouterr()
        flags = ["--sim", self.machine, "-o", "json"] + (["--read-only"] if self.read_only else [])
        code = run([*flags, *args])
        out, err = self.capsys.readouterr()
        if code == 0:
            return Outcome(True, data=json.loads(out) if out.strip() else None)
        error = json.loads(err.strip().splitlines()[-1])
        assert error["exit_code"] == code == EXIT_BY_KIND[error["error"]], (code, error)
        assert "Traceback" not in err
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

    def instances(self, gpu: int) -> list[tuple[str, int, int]]:
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


def attach_holder(machine: str, gpu: int, uuid: str, pid: int) -> None:
    """Start a process on a MIG device through the simulator's control panel."""
    open_sim_control(machine).attach(pid, gpu, uuid, memory_mib=512)
