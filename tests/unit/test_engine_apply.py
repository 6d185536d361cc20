"""The apply engine on the simulator: idempotence, busy safety, rollback, crash recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend, open_sim_control
from migctl.engine.apply import apply, journal_for
from migctl.engine.assertion import check
from migctl.engine.export import current_layouts
from migctl.engine.hooks import HookFailedError, Hooks, ShellHook
from migctl.engine.recover import recover
from migctl.errors import InUseError
from migctl.model import Placement
from migctl.planner import DesiredGi, DesiredLayout

MACHINE = "h100-single"
MIXED = DesiredLayout(
    (DesiredGi("3g.40gb"), DesiredGi("2g.20gb"), DesiredGi("1g.10gb"), DesiredGi("1g.10gb"))
)
SEVEN = DesiredLayout(tuple(DesiredGi("1g.10gb") for _ in range(7)))


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))
    return tmp_path / "state"


@pytest.fixture
def backend(state_dir: Path) -> Iterator[NvmlBackend]:
    opened = open_backend(MACHINE)
    yield opened
    opened.close()


def layout_of(backend: NvmlBackend) -> list[tuple[str, str, list[str]]]:
    """Profiles, placements and CI profiles on GPU 0, sorted."""
    result = []
    for gi in backend.gpu_instances(0):
        cis = sorted(c.profile_name for c in backend.compute_instances(0, gi.id))
        result.append((gi.profile_name, str(gi.placement), cis))
    return sorted(result)


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_apply_reaches_the_layout_and_twice_is_a_noop(backend: NvmlBackend) -> None:
    first = apply(backend, {0: MIXED})
    assert first.changed and first.error is None
    assert check(backend, {0: MIXED}) == {0: []}
    assert [p for p, _, _ in layout_of(backend)] == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    assert all(cis == [p] for p, _, cis in layout_of(backend))
    second = apply(backend, {0: MIXED})
    assert second.noop and not second.changed


def test_export_applied_changes_nothing(backend: NvmlBackend) -> None:
    apply(backend, {0: MIXED})
    exported = current_layouts(backend, [0])
    before = layout_of(backend)
    outcome = apply(backend, exported)
    assert outcome.noop
    assert layout_of(backend) == before


def test_busy_instance_blocks_and_is_named(
    backend: NvmlBackend, holder: subprocess.Popen[bytes]
) -> None:
    apply(backend, {0: MIXED})
    device = next(d for d in backend.mig_devices(0) if d.gi_profile == "3g.40gb")
    open_sim_control(MACHINE).attach(holder.pid, 0, device.uuid, 100)
    with pytest.raises(InUseError) as refused:
        apply(backend, {0: SEVEN})
    assert "3g.40gb" in refused.value.message
    assert device.uuid in {d.uuid for d in backend.mig_devices(0)}


def test_moving_around_a_busy_instance_keeps_it(
    backend: NvmlBackend, holder: subprocess.Popen[bytes]
) -> None:
    apply(backend, {0: MIXED})
    busy = next(d for d in backend.mig_devices(0) if d.gi_profile == "3g.40gb")
    open_sim_control(MACHINE).attach(holder.pid, 0, busy.uuid, 100)
    target = DesiredLayout((DesiredGi("3g.40gb"), DesiredGi("1g.20gb"), DesiredGi("1g.20gb")))
    outcome = apply(backend, {0: target})
    assert outcome.error is None
    assert busy.uuid in {d.uuid for d in backend.mig_devices(0)}
    assert check(backend, {0: target}) == {0: []}


def test_failure_midway_restores_the_checkpoint(backend: NvmlBackend) -> None:
    apply(backend, {0: MIXED})
    before = layout_of(backend)
    open_sim_control(MACHINE).inject_fault("nvmlDeviceCreateGpuInstance", "UNKNOWN", skip=2)
    outcome = apply(backend, {0: SEVEN})
    assert outcome.error is not None and outcome.rolled_back and outcome.rollback_error is None
    assert layout_of(backend) == before
    assert journal_for(backend).read() is None


def test_pending_mode_is_reported(backend: NvmlBackend, holder: subprocess.Popen[bytes]) -> None:
    open_sim_control(MACHINE).attach(holder.pid, 0, None, 100)
    outcome = apply(backend, {0: MIXED})
    assert 0 in outcome.pending and str(holder.pid) in outcome.pending[0]
    assert outcome.error is None
    assert backend.gpu_instances(0) == []


def test_failing_before_hook_changes_nothing(backend: NvmlBackend, tmp_path: Path) -> None:
    seen = tmp_path / "plan.json"
    hooks = Hooks({"before-apply": (ShellHook(f"cat > {seen}; exit 3"),)})
    with pytest.raises(HookFailedError):
        apply(backend, {0: MIXED}, hooks=hooks)
    mode = backend.gpu(0).mig
    assert mode is not None and not mode.current
    plan = json.loads(seen.read_text())
    assert plan["plans"][0]["ops"][0]["op"] == "set_mig_mode"


CHILD = textwrap.dedent(
    """
    from migctl.backends.select import open_backend
    from migctl.engine.apply import apply
    from migctl.planner import DesiredGi, DesiredLayout
    target = DesiredLayout(tuple(DesiredGi("1g.10gb") for _ in range(7)))
    apply(open_backend("h100-single"), {0: target})
    """
)


@pytest.mark.parametrize("kill_at", [0, 1, 2, 5, 9, 13])
def test_a_killed_apply_is_repaired_by_the_next_run(
    backend: NvmlBackend, holder: subprocess.Popen[bytes], kill_at: int
) -> None:
    """Kill an apply at operation N: the next run converges; the busy instance survives."""
    apply(
        backend, {0: DesiredLayout((DesiredGi("1g.10gb", Placement(6, 1)), DesiredGi("4g.40gb")))}
    )
    busy = next(d for d in backend.mig_devices(0) if d.gi_profile == "1g.10gb")
    open_sim_control(MACHINE).attach(holder.pid, 0, busy.uuid, 100)
    control = open_sim_control(MACHINE)
    control.inject_fault("nvml@mutation", "KILL", skip=kill_at)
    child = subprocess.run(
        [sys.executable, "-c", CHILD], env=os.environ.copy(), check=False, capture_output=True
    )
    control.clear_faults()
    assert child.returncode == -9, child.stderr
    assert journal_for(backend).read() is not None
    outcome = apply(backend, {0: SEVEN})
    assert outcome.error is None
    assert outcome.recovered is not None and f"after {kill_at} of 14" in outcome.recovered
    assert check(backend, {0: SEVEN}) == {0: []}
    assert busy.uuid in {d.uuid for d in backend.mig_devices(0)}


def test_recover_rolls_back_an_interrupted_apply(backend: NvmlBackend) -> None:
    apply(backend, {0: MIXED})
    before = layout_of(backend)
    control = open_sim_control(MACHINE)
    control.inject_fault("nvmlDeviceCreateGpuInstance", "KILL", skip=3)
    child = subprocess.run(
        [sys.executable, "-c", CHILD], env=os.environ.copy(), check=False, capture_output=True
    )
    assert child.returncode == -9
    assert journal_for(backend).read() is not None
    result = recover(backend, rollback=True)
    assert result.mode == "rollback" and result.outcome is not None and result.outcome.error is None
    assert layout_of(backend) == before
    assert journal_for(backend).read() is None


def test_dry_run_names_what_a_forced_plan_would_disturb(
    backend: NvmlBackend, holder: subprocess.Popen[bytes]
) -> None:
    from migctl.engine.disturb import disturbed

    apply(backend, {0: MIXED})
    busy = next(d for d in backend.mig_devices(0) if d.gi_profile == "3g.40gb")
    open_sim_control(MACHINE).attach(holder.pid, 0, busy.uuid, 100)
    outcome = apply(backend, {0: SEVEN}, dry_run=True, force=True)
    lines = disturbed(backend, outcome.plans)[0]
    assert len(lines) == 2  # the 3g and the 2g go; the two 1g are kept for the 7 x 1g
    busy_line = next(line for line in lines if busy.uuid in line)
    assert f"process {holder.pid}" in busy_line and "sleep" in busy_line
    assert sum("idle" in line for line in lines) == 1
    assert len(backend.mig_devices(0)) == 4  # a dry run changes nothing
