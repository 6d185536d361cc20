"""apply and lease acquire racing on one lease database: a device is never destroyed while
leased, and never leased once destroyed.

The deterministic tests put the other client exactly where the race used to bite: between the
apply's lease check and its destroy, and after planning. The bounded race runs real processes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from migctl.backends.base import Backend
from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend, open_sim_control
from migctl.engine.apply import apply
from migctl.engine.files import MachineFiles
from migctl.engine.hooks import Hooks, ShellHook
from migctl.errors import InUseError, MigctlError
from migctl.leases import DeviceCandidate, DeviceRequest, Lease, LeaseOwner, LeaseStore
from migctl.planner import DesiredGi, DesiredLayout

MACHINE = "h100-single"
SEVEN = DesiredLayout(tuple(DesiredGi("1g.10gb") for _ in range(7)))
TWO = DesiredLayout((DesiredGi("3g.40gb"), DesiredGi("3g.40gb")))
BOB = LeaseOwner(user="bob", uid=4242, host="elsewhere", job="racer")


@pytest.fixture
def lease_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One lease database for the engine here and the CLI processes the tests start."""
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))
    return tmp_path / "leases.db"


def files(lease_db: Path) -> MachineFiles:
    return MachineFiles(lease_db, lease_db.parent / "state")


@pytest.fixture
def backend(lease_db: Path) -> Iterator[NvmlBackend]:
    opened = open_backend(MACHINE)
    yield opened
    opened.close()


def live_devices() -> list[DeviceCandidate]:
    """The machine's MIG devices now, read from the simulator's state (no NVML involved)."""
    state = open_sim_control(MACHINE).state()
    return [
        DeviceCandidate(ci.uuid, gpu.index, gi.id, ci.id, "any", 1)
        for gpu in state.gpus
        for gi in gpu.gis
        for ci in gi.cis
    ]


def stale_leases(lease_db: Path) -> list[Lease]:
    """Active leases that name a device that no longer exists."""
    existing = {device.uuid for device in live_devices()}
    with LeaseStore(lease_db) as store:
        return [lease for lease in store.list_leases() if lease.uuid not in existing]


class AcquireRightBeforeDestroy:
    """The backend, except that right before its first compute-instance destroy another lease
    client asks for that very device (in a thread with its own database connection)."""

    def __init__(self, backend: Backend, lease_db: Path) -> None:
        self._backend = backend
        self._lease_db = lease_db
        self.thread: threading.Thread | None = None
        self.asked_for: str | None = None
        self.answer: Lease | MigctlError | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def destroy_compute_instance(self, gpu: int, gi_id: int, ci_id: int) -> None:
        if self.thread is None:
            self.asked_for = next(
                d.uuid
                for d in self._backend.mig_devices(gpu)
                if (d.gi_id, d.ci_id) == (gi_id, ci_id)
            )
            self.thread = threading.Thread(target=self._acquire, args=(self.asked_for,))
            self.thread.start()
            self.thread.join(timeout=1.0)  # done at once, unless the apply holds the lock
        self._backend.destroy_compute_instance(gpu, gi_id, ci_id)

    def _acquire(self, uuid: str) -> None:
        with LeaseStore(self._lease_db) as store:
            try:
                self.answer = store.acquire(DeviceRequest(uuid=uuid), BOB, live_devices)
            except MigctlError as refused:
                self.answer = refused


def test_an_acquire_between_the_lease_check_and_the_destroy_never_gets_the_device(
    backend: NvmlBackend, lease_db: Path
) -> None:
    assert apply(backend, {0: TWO}, files=files(lease_db)).error is None
    racing = AcquireRightBeforeDestroy(backend, lease_db)
    outcome = apply(cast(Backend, racing), {0: SEVEN}, files=files(lease_db))
    assert racing.thread is not None
    racing.thread.join(timeout=60)
    assert not racing.thread.is_alive()
    assert outcome.error is None  # nobody held the device when the apply looked
    assert racing.asked_for not in {d.uuid for d in live_devices()}  # it was destroyed ...
    assert isinstance(racing.answer, MigctlError)  # ... so it was not leased
    assert stale_leases(lease_db) == []


def test_a_lease_granted_after_planning_stops_the_destroy(
    backend: NvmlBackend, lease_db: Path
) -> None:
    assert apply(backend, {0: TWO}, files=files(lease_db)).error is None
    target = min(live_devices(), key=lambda d: d.gi_id).uuid
    acquire = f"{sys.executable} -m migctl --sim {MACHINE} lease acquire --device {target}"
    hooks = Hooks(
        {"before-instance-changes": (ShellHook(acquire),)}
    )  # after the plan, before a change
    outcome = apply(backend, {0: SEVEN}, hooks=hooks, files=files(lease_db))
    assert isinstance(outcome.error, InUseError) and target in outcome.error.message
    assert outcome.rolled_back
    assert target in {d.uuid for d in live_devices()}
    with LeaseStore(lease_db) as store:
        assert [lease.uuid for lease in store.list_leases()] == [target]


def test_a_soft_lease_granted_after_planning_stops_the_destroy(
    backend: NvmlBackend, lease_db: Path
) -> None:
    """A MIG device shared out through MPS after the plan was made is not destroyed."""
    from migctl.node.open import open_node
    from tests.unit.soft_nodes import end_daemons

    assert apply(backend, {0: TWO}, files=files(lease_db)).error is None
    target = min(live_devices(), key=lambda d: d.gi_id).uuid
    share = f"lease acquire --share 25% --parent {target}"
    acquire = f"{sys.executable} -m migctl --sim {MACHINE} {share}"
    hooks = Hooks({"before-instance-changes": (ShellHook(acquire),)})
    try:
        outcome = apply(backend, {0: SEVEN}, hooks=hooks, files=files(lease_db))
    finally:
        with open_node(sim=MACHINE) as node:
            end_daemons(node)
    assert isinstance(outcome.error, InUseError) and target in outcome.error.message
    assert outcome.rolled_back
    assert target in {d.uuid for d in live_devices()}
    with LeaseStore(lease_db) as store:
        (soft,) = store.list_leases()
    assert soft.soft and soft.parent_uuid == target


def test_acquire_reads_the_devices_under_the_write_lock(lease_db: Path) -> None:
    """The device list is read inside the transaction that grants: a device destroyed while
    an acquire waited for the lock is never granted."""
    import sqlite3

    lock_held: list[bool] = []

    def devices() -> list[DeviceCandidate]:
        probe = sqlite3.connect(lease_db, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            lock_held.append(False)
        except sqlite3.OperationalError:
            lock_held.append(True)
        finally:
            probe.close()
        return [DeviceCandidate("MIG-a", 0, 1, 0, "1g.10gb", 9_984)]

    with LeaseStore(lease_db) as store:
        store.acquire(DeviceRequest(), BOB, devices)
    assert lock_held == [True]


RACE_ROUNDS = 8


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "migctl", "--sim", MACHINE, *argv],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.timeout(600)
def test_racing_apply_and_acquire_processes_keep_both_promises(
    backend: NvmlBackend, lease_db: Path
) -> None:
    """Bounded race: each round an apply that destroys every idle device races two waiting
    acquires; afterwards no active lease may name a destroyed device."""
    rng = random.Random(11)
    layouts = ("2", "7")
    for round_number in range(RACE_ROUNDS):
        racers = [spawn("lease", "acquire", "--wait", "5", "--job", f"r{round_number}")]
        racers.append(spawn("split", layouts[round_number % 2], "-i", "0"))
        racers.append(spawn("lease", "acquire", "--wait", "5", "--job", f"s{round_number}"))
        rng.shuffle(racers)
        for process in racers:
            _, err = process.communicate(timeout=120)
            assert process.returncode in {0, 5, 6}, err.decode()
        assert stale_leases(lease_db) == [], f"round {round_number}"
        with LeaseStore(lease_db) as store:
            for lease in store.list_leases():
                store.release(lease.lease_id, user=lease.user)
