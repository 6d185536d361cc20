"""The openb benchmarks' core on a tiny slice: mapping, MIG rules, fleet, fill, replay, report."""

from __future__ import annotations

import math
from collections.abc import Hashable
from pathlib import Path

import pytest

from bench import openb
from bench.fleet import POLICIES, Fleet, NodeShape
from bench.frag import NodeFrag, Task, typical_tasks
from bench.gpu_rules import FractionalRules, MigRules
from bench.openb_data import Pod, Request, load_nodes, load_pods, mig_profile, request_for
from bench.openb_fill import arrival_order, arrived_by_reading, fill
from bench.openb_optimum import offline_optimum, rounding_taxes
from bench.openb_replay import gpu_pods, offline_gpus, replay
from migctl.catalog import load_catalog
from migctl.geometry import Occupant, placement_refusal, remaining_capacity
from migctl.model import Placement

DATA = Path(__file__).parents[1] / "data" / "bench" / "alibaba-openb"
H100 = load_catalog().get("h100-80gb-hbm3")
PODS = load_pods(DATA)
NODES = load_nodes(DATA)
REQUESTS = {p.name: request_for(p, H100) for p in PODS}


def _frag(pods: list[Pod] = PODS) -> NodeFrag:
    return NodeFrag(MigRules(H100), typical_tasks(pods, REQUESTS))


def test_smallest_profile_covering_the_share() -> None:
    # compute share = compute slices / 7: 1/7 = 0.143, 3/7 = 0.4286, 4/7 = 0.571
    assert mig_profile(H100, 50) == "1g.10gb"
    assert mig_profile(H100, 143) == "2g.20gb"
    assert mig_profile(H100, 428) == "3g.40gb"
    assert mig_profile(H100, 470) == "4g.40gb"
    assert mig_profile(H100, 810) == "7g.80gb"
    whole = Pod("w", 1000, 1, 8, 1000, 0, 1)
    assert request_for(whole, H100) == Request("whole", gpus=8)
    assert request_for(Pod("c", 1000, 1, 0, 0, 0, 1), H100).kind == "cpu"
    assert request_for(Pod("s", 1000, 1, 1, 470, 0, 1), None) == Request("share", 470, 1)


def _legal(states: list[Hashable]) -> bool:
    rules = MigRules(H100)
    for state in states:
        current: list[Occupant] = []
        for occupant in rules.occupants(state):
            if placement_refusal(H100, occupant.profile, occupant.placement, current):
                return False
            current.append(occupant)
    return True


def test_mig_rules_follow_geometry() -> None:
    rules = MigRules(H100)
    assert [o.label for o in rules.options((), "3g.40gb")] == [("3g.40gb", 0), ("3g.40gb", 4)]
    after = rules.options((), "4g.40gb")[0].state
    assert [o.label for o in rules.options(after, "3g.40gb")] == [("3g.40gb", 4)]
    assert rules.options(after, "4g.40gb") == ()
    assert rules.remove(after, ("4g.40gb", 0)) == ()
    profile = H100.gi_profile("2g.20gb")
    assert profile is not None
    occupants = [Occupant(H100.gi_profile("4g.40gb"), Placement(0, 4))]  # type: ignore[arg-type]
    assert rules.room(after, "2g.20gb") == remaining_capacity(H100, profile, occupants)


@pytest.mark.parametrize("policy", POLICIES)
def test_fleet_keeps_layouts_legal_and_releases_everything(policy: str) -> None:
    shapes = [NodeShape(n.cpu_milli, n.memory_mib, n.gpus) for n in NODES]
    fleet = Fleet(shapes, MigRules(H100), policy, seed=1, frag=_frag())
    granted = []
    for pod in arrival_order(PODS, 3):
        placed = fleet.place(pod.cpu_milli, pod.memory_mib, REQUESTS[pod.name])
        if placed is not None:
            granted.append(placed)
    assert granted and all(_legal(states) for states in fleet.layouts())
    assert (fleet.free_cpu >= 0).all() and (fleet.free_mem >= 0).all()
    rules = MigRules(H100)
    assert fleet.used_units == sum(rules.used(s) for n in fleet.layouts() for s in n)
    for placed in reversed(granted):
        fleet.release(placed)
    assert fleet.used_units == 0 and fleet.busy_gpus == 0
    assert [int(c) for c in fleet.free_cpu] == [n.cpu_milli for n in NODES]


def test_migctl_places_a_1g_where_a_4g_still_fits() -> None:
    tasks = [Task(Request("share", "4g.40gb", 1), 1.0, 0)]
    frag = NodeFrag(MigRules(H100), tasks)
    one_gpu = [NodeShape(10**6, 10**6, 1)]
    aware = Fleet(one_gpu, MigRules(H100), "migctl", frag=frag)
    naive = Fleet(one_gpu, MigRules(H100), "first-fit")
    for fleet in (aware, naive):
        assert fleet.place(1, 1, Request("share", "1g.10gb", 1)) is not None
    assert aware.place(1, 1, Request("share", "4g.40gb", 1)) is not None
    assert naive.place(1, 1, Request("share", "4g.40gb", 1)) is None  # 1g at 0 blocks it


def test_arrival_order_tops_up_to_130_percent() -> None:
    order = arrival_order(PODS, 42)
    assert len(order) == math.ceil(1.3 * len(PODS))
    assert sorted(p.name for p in order[: len(PODS)]) == sorted(p.name for p in PODS)
    assert order == arrival_order(PODS, 42) and order != arrival_order(PODS, 43)


@pytest.mark.parametrize("policy", POLICIES)
def test_fill_ratios(policy: str) -> None:
    rules, gpus = MigRules(H100), sum(n.gpus for n in NODES)
    result = fill(PODS, REQUESTS, NODES, rules, policy=policy, seed=42, frag=_frag())
    assert 0 < result.useful <= result.slices <= 1  # MIG rounds shares up
    optimum = offline_optimum(arrived_by_reading(PODS, gpus, 42), REQUESTS, rules, gpus)
    assert result.useful <= optimum + 1e-9  # no scheduler beats the offline optimum
    again = fill(PODS, REQUESTS, NODES, rules, policy=policy, seed=42, frag=_frag())
    assert again == result
    if policy != "migctl":
        fractional = {p.name: request_for(p, None) for p in PODS}
        frac = fill(PODS, fractional, NODES, FractionalRules(), policy=policy, seed=42)
        assert frac.useful == pytest.approx(frac.slices)


def _pod(name: str, milli: int, gpus: int = 1) -> Pod:
    return Pod(name, 1000, 1, gpus, milli, 0, 1)


def test_offline_optimum_keeps_the_mig_layout_rules() -> None:
    """Two 3g pods and a 1g pod on one GPU: a slice count says all three fit (7 slices);
    no H100 layout holds 3g+3g+1g (3g takes 4 of 8 memory slices), so the best is 3g+3g."""
    pods = [_pod("a", 428), _pod("b", 428), _pod("c", 142)]
    requests = {p.name: request_for(p, H100) for p in pods}
    assert [requests[p.name].share for p in pods] == ["3g.40gb", "3g.40gb", "1g.10gb"]
    assert offline_optimum(pods, requests, MigRules(H100), 1) == pytest.approx(0.856)
    assert offline_optimum(pods, requests, MigRules(H100), 2) == pytest.approx(0.499)
    whole = [*pods, _pod("w", 1000, 2)]
    requests = {p.name: request_for(p, H100) for p in whole}
    assert offline_optimum(whole, requests, MigRules(H100), 2) == pytest.approx(1.0)


def test_rounding_tax_of_sharing_pods_and_overall() -> None:
    pods = [_pod("s", 150), _pod("w", 1000, 2), Pod("cpu", 1000, 1, 0, 0, 0, 1)]
    requests = {p.name: request_for(p, H100) for p in pods}
    tax = rounding_taxes(pods, requests, MigRules(H100))
    assert tax.sharing == pytest.approx(2000 / 7 / 150 - 1)  # a 2g: 2/7 of a GPU
    assert tax.overall == pytest.approx((2000 / 7 + 2000) / 2150 - 1)


def test_arrived_by_reading_stops_at_the_capacity() -> None:
    gpus = sum(n.gpus for n in NODES)
    arrived = arrived_by_reading(PODS, gpus, 42)
    assert sum(p.requested_milli for p in arrived[:-1]) < 1000 * gpus
    assert sum(p.requested_milli for p in arrived) >= 1000 * gpus
    assert arrived == arrival_order(PODS, 42)[: len(arrived)]


def test_replay_counts_and_offline_bound() -> None:
    pods = gpu_pods(PODS)
    rules = MigRules(H100)
    small = replay(pods, REQUESTS, rules, policy="best-fit", gpus=10, frag=_frag())
    assert small.accepted + small.rejected == len(pods) and small.rejected > 0
    large = replay(pods, REQUESTS, rules, policy="migctl", gpus=400, frag=_frag())
    assert large.rejected == 0 and large.gpus_touched <= 400
    moments = large.times_s[:: max(1, len(large.times_s) // 15)]
    bound = offline_gpus(pods, REQUESTS, H100, "7g.80gb", moments)
    for moment, fewest in zip(moments, bound, strict=True):
        last = max(i for i, t in enumerate(large.times_s) if t <= moment)
        assert fewest <= large.busy_gpus[last]


def test_report_is_written(tmp_path: Path) -> None:
    argv = ["--data", str(DATA), "--out", str(tmp_path), "--seeds", "42-43", "--moments", "8"]
    argv += ["--models", "h100-80gb-hbm3"]
    assert openb.main(argv) == 0
    text = (tmp_path / "openb.md").read_text()
    assert "MIG h100-80gb-hbm3, migctl" in text and "fractional, best-fit" in text
    assert "MIG offline optimum" in text and "for the pods that share a GPU" in text
    assert (tmp_path / "openb_fill.png").stat().st_size > 0
    assert (tmp_path / "openb_replay.png").stat().st_size > 0
