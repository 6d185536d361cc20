"""A RemoteNode through a real daemon answers exactly as a LocalNode on the same machine.

Why this exists: the CLI, Python users and the fleet drive one ``Node`` protocol; whether a call
goes to a ``LocalNode`` or through the daemon (whose routes call the daemon's own
``LocalNode``) must not change its value, its error class, message or exit code. Each test runs
the same calls in lockstep on two simulated machines of one kind that start alike (simulated
UUIDs derive from the machine's name, so both have the same GPUs and the same MIG device
UUIDs): one served by a real ``migctl serve`` (``migctl.testing.running_daemon``), the other
opened here (``migctl.testing.simulated_node``). Times (lease creation, expiry) are the only
values allowed to differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import migctl
from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    InvalidInputError,
    MigctlError,
    NotFoundError,
    PermissionDeniedError,
    ReadOnlyError,
    error_class,
)
from migctl.leases import Lease
from migctl.model import Placement
from migctl.node.local import LocalNode
from migctl.node.remote import RemoteNode
from migctl.planner import DesiredGi, DesiredLayout
from migctl.schemas.layouts import LayoutTarget
from migctl.testing import running_daemon, simulated_node

MACHINE = "a30-node"  # 4 x A30: selections of several GPUs, a small geometry
Pair = tuple[RemoteNode, LocalNode]
NATIVE = (
    "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  small:\n    gpus:\n"
    "      - select: all\n        mig: true\n        instances:\n"
    "          - {profile: 1g.6gb, count: 4}\n"
)


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A RemoteNode on a fresh daemon's machine and a LocalNode on a fresh machine, alike."""
    with running_daemon(MACHINE, tcp=False) as daemon, simulated_node(MACHINE) as local:
        yield daemon.node, local


def both(pair: Pair, call: Callable[[migctl.Node], Any]) -> Any:
    """``call`` on both nodes; the two answers must be equal; the answer."""
    remote, local = pair
    there, here = call(remote), call(local)
    assert comparable(there) == comparable(here)
    return here


def comparable(value: Any) -> Any:
    """``value`` with lease times left out (the two machines lease at different moments)."""
    if isinstance(value, Lease):
        return dataclasses.replace(
            value,
            created_at=0.0,
            heartbeat_at=0.0,
            expires_at=None if value.expires_at is None else 0.0,
            ended_at=None if value.ended_at is None else 0.0,
        )
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: comparable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, MigctlError):
        return value.to_dict()
    return value


def same_error(pair: Pair, call: Callable[[migctl.Node], Any], kind: type[MigctlError]) -> None:
    """``call`` fails on both nodes with the same class, message, hint, context, exit code."""
    failures = []
    for node in pair:
        with pytest.raises(MigctlError) as caught:
            call(node)
        failures.append(caught.value)
    there, here = failures
    assert isinstance(there, kind) and isinstance(here, kind)
    assert type(there) is type(here) or type(there) is error_class(here.kind)
    fields = ("kind", "message", "hint", "context", "exit_code")
    assert [getattr(there, f) for f in fields] == [getattr(here, f) for f in fields]


def split7(pair: Pair) -> None:
    both(pair, lambda node: node.set_mode("all", enabled=True))
    both(pair, lambda node: node.apply(migctl.SplitTarget(n=4)))


def test_reads_are_the_same(pair: Pair) -> None:
    split7(pair)
    inventory = both(pair, lambda node: node.inventory())
    assert len(inventory.gpus) == 4 and all(len(gpu.devices) == 4 for gpu in inventory.gpus)
    uuid = inventory.gpus[2].info.uuid
    assert both(pair, lambda node: node.inventory("1,3")).gpus[1].info.index == 3
    both(pair, lambda node: node.inventory([0]))
    both(pair, lambda node: node.inventory(uuid))
    assert both(pair, lambda node: node.profiles(0)).gpu_index == 0
    assert both(pair, lambda node: node.profiles(uuid)).gpu_index == 2
    assert sorted(both(pair, lambda node: node.models())) == [0, 1, 2, 3]
    both(pair, lambda node: node.models("2"))
    assert "1g.6gb" in both(pair, lambda node: node.export())
    both(pair, lambda node: node.export(gpus=[1], format="mig-parted", name="mine"))
    assert both(pair, lambda node: node.check(migctl.SplitTarget(n=4))).matches
    assert not both(pair, lambda node: node.check(migctl.SplitTarget(n=2), gpus=[1])).matches
    report = both(pair, lambda node: node.plan(migctl.SplitTarget(n=2), gpus="0,1"))
    assert sorted(report.plans) == [0, 1] and report.plans[0].ops
    both(pair, lambda node: node.plan(LayoutTarget(text=NATIVE, config="small"), force=True))
    both(pair, lambda node: node.plan(migctl.DemandTarget(demand="2x12GiB,1x6GiB")))
    both(pair, lambda node: node.plan(migctl.SizeTarget(memory_mib=10_000, count=2), gpus=[3]))
    assert both(pair, lambda node: node.recover()).mode == "nothing"


def test_changes_are_the_same(pair: Pair) -> None:
    changes = both(pair, lambda node: node.set_mode([0, 1], enabled=True))
    assert [change.gpu_index for change in changes] == [0, 1]
    outcome = both(pair, lambda node: node.apply(migctl.SplitTarget(n=2), gpus=[0, 1]))
    assert outcome.executed and outcome.reasons and outcome.error is None
    assert both(pair, lambda node: node.apply(migctl.SplitTarget(n=2), gpus=[0])).noop
    dry = both(pair, lambda node: node.apply(migctl.SplitTarget(n=4), gpus=[0], dry_run=True))
    assert dry.dry_run and not dry.executed
    explicit = migctl.InstancesTarget.of(
        {1: DesiredLayout((DesiredGi("2g.12gb", Placement(2, 2)), DesiredGi("1g.6gb")))}
    )
    assert both(pair, lambda node: node.apply(explicit)).executed == {1: 4}
    both(pair, lambda node: node.apply(LayoutTarget(text=NATIVE, config="small"), gpus=[0]))
    both(pair, lambda node: node.inventory())
    changes = both(pair, lambda node: node.set_mode([1], enabled=False, force=True))
    assert [(c.gpu_index, c.enabled) for c in changes] == [(1, False)]
    assert both(pair, lambda node: node.inventory([1])).gpus[0].instances == ()


def test_instances_are_the_same(pair: Pair) -> None:
    split7(pair)
    gone = both(pair, lambda node: node.destroy_gpu_instances(2, None))
    assert len(gone) == 4
    made = both(pair, lambda node: node.create_gpu_instances(2, "2g.12gb,1g.6gb", with_ci=False))
    assert [gi.profile_name for gi in made] == ["2g.12gb", "1g.6gb"]
    big, small = made[0].id, made[1].id
    cis = both(pair, lambda node: node.create_compute_instances(2, big, "1c.2g.12gb,1c.2g.12gb"))
    assert len(cis) == 2
    both(pair, lambda node: node.create_compute_instances(2, small))
    both(pair, lambda node: node.inventory([2]))
    assert both(pair, lambda node: node.destroy_compute_instances(2, big, None))
    assert both(pair, lambda node: node.destroy_gpu_instances(2, [big])) == [big]
    both(pair, lambda node: node.profiles(2))


def test_leases_are_the_same(pair: Pair) -> None:
    split7(pair)
    request = migctl.LeaseRequest(profile="1g.6gb", job="notebook", ttl_seconds=600)
    lease = both(pair, lambda node: node.acquire(request))
    assert (lease.profile, lease.job, lease.active) == ("1g.6gb", "notebook", True)
    other = both(pair, lambda node: node.acquire(migctl.LeaseRequest(memory_mib=5000)))
    listed = both(pair, lambda node: node.leases())
    assert [x.lease_id for x in listed] == [lease.lease_id, other.lease_id]
    assert [x.lease_id for x in both(pair, lambda node: node.leases(mine=True))] == [1, 2]
    renewed = both(pair, lambda node: node.renew(lease.lease_id, 1200))
    assert renewed.ttl_seconds == 1200
    both(pair, lambda node: node.renew(str(other.lease_id)))
    both(pair, lambda node: node.inventory())
    assert both(pair, lambda node: node.release(lease.uuid)).end_reason is not None
    both(pair, lambda node: node.release(other.lease_id))
    history = both(pair, lambda node: node.leases(history=True))
    assert [x.active for x in history] == [False, False]
    assert both(pair, lambda node: node.leases()) == []


def test_an_admin_may_lease_a_device_made_on_demand(pair: Pair) -> None:
    both(pair, lambda node: node.set_mode("all", enabled=True))
    wanted = migctl.LeaseRequest(profile="2g.12gb", create=True, job="made")
    lease = both(pair, lambda node: node.acquire(wanted))
    assert (lease.profile, lease.job) == ("2g.12gb", "made")
    devices = both(pair, lambda node: node.inventory()).gpus[lease.gpu_index].devices
    assert [device.uuid for device in devices] == [lease.uuid]


def test_the_machine_metrics_are_the_same(pair: Pair) -> None:
    split7(pair)
    both(pair, lambda node: node.acquire(migctl.LeaseRequest(profile="1g.6gb")))
    remote, local = pair
    served = {family.name: family.samples for family in families(remote.metrics())}
    machine = {family.name: family.samples for family in families(local.metrics())}
    assert machine and {name: served.get(name) for name in machine} == machine
    assert "migctl_lease_requests_waiting" in served  # and the daemon's own metrics besides


def families(text: str) -> list[Any]:
    return list(text_string_to_metric_families(text))


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda node: node.profiles("9"), NotFoundError),
        (lambda node: node.inventory("0,9"), NotFoundError),
        (lambda node: node.set_mode([0], enabled=False), InUseError),
        (lambda node: node.apply(migctl.SplitTarget(n=9), gpus=[0]), InsufficientResourcesError),
        (
            lambda node: node.apply(
                migctl.InstancesTarget.of(
                    {0: DesiredLayout((DesiredGi("2g.12gb", Placement(1, 2)),))}
                )
            ),
            InvalidInputError,
        ),
        (lambda node: node.release(99), NotFoundError),
        (lambda node: node.create_gpu_instances(0, "1g.6gb"), InsufficientResourcesError),
        (lambda node: node.export(format="yaml"), MigctlError),
    ],
    ids=[
        "no such GPU",
        "no such GPU in a selection",
        "disable with instances",
        "a split the GPU cannot hold",
        "an illegal placement",
        "no such lease",
        "no free slices",
        "unknown export format",
    ],
)
def test_failures_come_back_as_the_same_error(
    pair: Pair, call: Callable[[migctl.Node], Any], kind: type[MigctlError]
) -> None:
    split7(pair)
    same_error(pair, call, kind)


def test_a_user_asking_for_an_admin_change_is_denied_and_nothing_changes() -> None:
    with running_daemon(MACHINE) as daemon:
        with daemon.client() as root:
            created = root.post("/v1/tokens", json={"name": "alice", "role": "user"})
        with daemon.connect(token=created.json()["token"]) as alice:
            before = alice.inventory()
            for change in (
                lambda: alice.apply(migctl.SplitTarget(n=4)),
                lambda: alice.set_mode([0], enabled=True),
                lambda: alice.create_gpu_instances(0, "1g.6gb"),
                alice.recover,
                lambda: alice.acquire(migctl.LeaseRequest(profile="1g.6gb", create=True)),
            ):
                with pytest.raises(PermissionDeniedError) as caught:
                    change()
                assert caught.value.exit_code == 4 and "admin role" in caught.value.message, (
                    caught.value.message
                )
            assert alice.inventory() == before


def test_a_read_only_daemon_refuses_changes_as_a_read_only_node() -> None:
    env = {"MIGCTL_READ_ONLY": "1"}
    with (
        running_daemon(MACHINE, tcp=False, extra_env=env) as daemon,
        simulated_node(MACHINE, read_only=True) as local,
    ):
        pair = (daemon.node, local)
        same_error(pair, lambda node: node.set_mode([0], enabled=True), ReadOnlyError)
        outcome = both(pair, lambda node: node.apply(migctl.SplitTarget(n=2)))
        assert isinstance(outcome.error, ReadOnlyError) and not outcome.executed
        both(pair, lambda node: node.inventory())
