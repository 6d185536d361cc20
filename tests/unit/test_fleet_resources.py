"""migctl.dask helpers, the fleet resource vocabulary, the policy and worker processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migctl.catalog import load_catalog
from migctl.dask import gpu, mig, worker_memory_limit, worker_resources
from migctl.errors import InvalidInputError, UsageError
from migctl.fleet.policy import Budget, Policy
from migctl.fleet.resources import demands_of, resources_text
from migctl.fleet.workers import WorkerProcess, worker_command

H100 = load_catalog().get("h100-80gb-hbm3")
ONE_G = H100.gi_profile("1g.10gb")
assert ONE_G is not None


def test_mig_and_gpu_speak_the_device_plugin_vocabulary() -> None:
    assert mig("3g.40gb") == {"mig-3g.40gb": 1.0}
    assert mig("MIG 1G.10GB") == {"mig-1g.10gb": 1.0}
    assert gpu(mem="12GiB") == {"mig-device": 1.0, "gpu-mem-gib": 12.0}
    assert gpu(mem="10GB")["gpu-mem-gib"] == pytest.approx(9537 / 1024)  # rounded up to MiB
    assert gpu(sm=30) == {"mig-device": 1.0, "gpu-sm": 30.0}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mig("5g.50gb"), "not a MIG profile"),
        (gpu, "needs mem= or sm="),
        (lambda: gpu(mem="4TiB"), "no MIG device of any known GPU"),
        (lambda: gpu(sm=0), "whole number"),
        (lambda: gpu(sm=10**6), "whole number"),
    ],
)
def test_requests_no_device_could_serve_are_refused_at_once(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        call()  # type: ignore[operator]
    assert info.value.hint


def test_an_unreadable_size_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        gpu(mem="twelve")


def test_a_worker_offers_its_instance_never_the_whole_gpu() -> None:
    assert ONE_G is not None
    resources = worker_resources(ONE_G)
    assert resources == {
        "mig-1g.10gb": 1.0,
        "mig-device": 1.0,
        "gpu-mem-gib": 9.75,
        "gpu-sm": 16.0,
    }
    assert worker_memory_limit(ONE_G) == 9984 * 1024 * 1024
    # a task asking exactly the instance's memory fits; a MiB more does not
    assert gpu(mem="9984MiB")["gpu-mem-gib"] <= resources["gpu-mem-gib"]
    assert gpu(mem="9985MiB")["gpu-mem-gib"] > resources["gpu-mem-gib"]


def test_worker_command_runs_dask_under_migctl_run_on_the_device() -> None:
    assert ONE_G is not None
    argv = worker_command("tcp://127.0.0.1:8786", "MIG-abc", ONE_G, "h:MIG-abc")
    assert argv[:8] == [
        "migctl",
        "run",
        "--device",
        "MIG-abc",
        "--job",
        "h:MIG-abc",
        "--quiet",
        "--",
    ]
    assert argv[8:11] == ["dask", "worker", "tcp://127.0.0.1:8786"]  # the lease's job: the worker
    assert argv[argv.index("--nthreads") + 1] == "1" and "--no-nanny" in argv
    assert argv[argv.index("--resources") + 1] == resources_text(worker_resources(ONE_G))
    assert argv[argv.index("--memory-limit") + 1] == str(9984 * 1024 * 1024)


def test_task_restrictions_become_planner_demand() -> None:
    keys, demands = demands_of([mig("3g.40gb"), mig("3g.40gb"), gpu(mem="12GiB"), {"CPU": 1}])
    assert len(keys) == 2
    by_label = {d.label: d for d in demands}
    assert by_label["mig-3g.40gb=1"].count == 2
    assert by_label["mig-3g.40gb=1"].profiles == ("3g.40gb",)
    need = by_label["gpu-mem-gib=12 mig-device=1"].requirement
    assert need is not None and need.memory_mib == 12 * 1024


@pytest.mark.parametrize("field", ["cycle_s", "per_host_in_flight", "fleet_per_hour"])
@pytest.mark.parametrize("value", [0, -1, 10**9, True])
def test_a_bad_policy_is_refused_naming_the_setting(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=field):
        Policy(**{field: value})  # type: ignore[arg-type]


def test_budgets_count_in_flight_and_per_hour() -> None:
    budget = Budget(Policy(per_host_in_flight=1, fleet_in_flight=2, per_host_per_hour=2))
    assert budget.refusal("a", 0.0, {}) is None
    assert "in flight" in (budget.refusal("a", 0.0, {"a": 1}) or "")
    assert "fleet" in (budget.refusal("c", 0.0, {"a": 1, "b": 1}) or "")
    budget.record("a", 0.0)
    budget.record("a", 10.0)
    assert "this hour" in (budget.refusal("a", 20.0, {}) or "")
    assert budget.refusal("a", 3601.0, {}) is None  # the first one left the window


@pytest.mark.timeout(30)
def test_stopping_a_worker_ends_its_whole_process_group(tmp_path: Path) -> None:
    """The leader ignores SIGTERM and leaves a child: both are gone after the grace period."""
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(tmp_path / 'child')!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    process = WorkerProcess.start([sys.executable, "-c", script], os.environ, str(tmp_path / "log"))
    child_file = tmp_path / "child"
    deadline = time.monotonic() + 10
    while not child_file.exists() or not child_file.read_text():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    child = int(child_file.read_text())
    asyncio.run(process.stop(grace_s=0.5))
    assert process.process.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(child):
        assert time.monotonic() < deadline, "the worker's child outlived the stop"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], check=False, capture_output=True, text=True
    )
    return not state.stdout.strip().startswith("Z")


def test_sigterm_is_what_a_worker_gets_first(tmp_path: Path) -> None:
    marker = tmp_path / "term"
    script = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').close(), sys.exit(0)))\n"
        "time.sleep(60)\n"
    )
    process = WorkerProcess.start([sys.executable, "-c", script], os.environ, str(tmp_path / "log"))
    time.sleep(0.5)
    asyncio.run(process.stop(grace_s=5))
    assert marker.exists() and process.process.returncode == 0
