"""Property: moving between any two layouts on a busy GPU never destroys an instance holding a
process, and reaches the target whenever that is possible (checked by an independent oracle)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migctl.backends.nvml import NvmlBackend
from migctl.catalog import load_catalog
from migctl.engine.apply import apply
from migctl.engine.assertion import check
from migctl.engine.files import MachineFiles
from migctl.errors import InUseError
from migctl.geometry import Occupant
from migctl.planner import DesiredGi, DesiredLayout, place
from migctl.sim import SimControl, SimLibrary, open_sim
from tests.unit.test_engine_every_layout import legal_layouts

CATALOG = load_catalog()
MODELS = {"memory:h100-single": CATALOG.get("h100"), "memory:dgx-a100": CATALOG.get("a100-40gb")}
LAYOUTS = {
    machine: [layout for layout in legal_layouts(model) if layout]
    for machine, model in MODELS.items()
}


@pytest.fixture(scope="module")
def environment() -> Iterator[MachineFiles]:
    """The engine's files for the in-memory machines (a memory machine has no directory)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as directory:
        yield MachineFiles(Path(directory) / "leases.db", Path(directory))


def reachable(machine: str, busy: list[Occupant], target: tuple[str, ...]) -> bool:
    """Oracle: the target keeps every busy GI (same profile) and the rest fits around them."""
    model = MODELS[machine]
    wanted = Counter(target)
    wanted.subtract(Counter(o.profile.name for o in busy))
    if any(count < 0 for count in wanted.values()):
        return False
    rest = [model.gi_profile(name) for name, count in wanted.items() for _ in range(count)]
    return place(model, [p for p in rest if p is not None], busy) is not None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("machine", sorted(MODELS))
def test_busy_instances_survive_and_reachable_targets_are_reached(
    machine: str, environment: MachineFiles, data: st.DataObject
) -> None:
    start = data.draw(st.sampled_from(LAYOUTS[machine]), label="start")
    target = data.draw(st.sampled_from(LAYOUTS[machine]), label="target")
    sim = open_sim(machine, CATALOG)
    backend = NvmlBackend(CATALOG, library=SimLibrary(sim))
    holders: list[subprocess.Popen[bytes]] = []
    try:
        start_layout = {0: DesiredLayout(tuple(DesiredGi(n) for n in start))}
        assert apply(backend, start_layout, files=environment).error is None
        devices = backend.mig_devices(0)
        held = data.draw(
            st.lists(st.sampled_from(devices), unique_by=lambda d: d.uuid, max_size=3), label="busy"
        )
        for device in held:
            holders.append(subprocess.Popen(["sleep", "30"]))
            SimControl(sim).attach(holders[-1].pid, 0, device.uuid, 1)
        model = MODELS[machine]
        busy = [
            Occupant(p, d.placement)
            for d in held
            if (p := model.gi_profile(d.gi_profile)) is not None
        ]
        layout = {0: DesiredLayout(tuple(DesiredGi(n) for n in target))}
        possible = reachable(machine, busy, target)
        try:
            outcome = apply(backend, layout, files=environment)
            assert possible, "the engine reached a target the oracle calls impossible"
            assert outcome.error is None and check(backend, layout, environment) == {0: []}
        except InUseError:
            assert not possible, "the engine refused a target the oracle can reach"
        remaining = {d.uuid for d in backend.mig_devices(0)}
        assert {d.uuid for d in held} <= remaining, "a busy MIG device was destroyed"
    finally:
        backend.close()
        for holder in holders:
            holder.kill()
            holder.wait()
