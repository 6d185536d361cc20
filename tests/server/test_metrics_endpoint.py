"""``GET /metrics`` of a real daemon: names, labels and values, who may read it, and privacy.

The module's own daemon (a simulated H100 split into 7 x 1g.10gb) runs with
``MIGCTL_METRICS_PUBLIC=1`` so that an anonymous TCP scrape is allowed there; the session's
shared daemon (``conftest``) runs without it. Scrapes are parsed with prometheus_client's parser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from migctl.server.telemetry import HIDDEN_HOLDER
from tests.server.conftest import apply_and_wait, split
from tests.server.daemon import Daemon

MIB = 1024 * 1024
DEVICE_LABELS = {"gpu", "gi", "ci", "uuid", "profile"}


class PublicMetricsDaemon(Daemon):
    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "MIGCTL_METRICS_PUBLIC": "1"}


@pytest.fixture(scope="module")
def public() -> Iterator[PublicMetricsDaemon]:
    started = PublicMetricsDaemon("h100-single")
    try:
        started.start()
        with started.client() as root:
            assert apply_and_wait(root, split(7))["status"] == "succeeded"
        yield started
    except BaseException:
        print(started.log())
        raise
    finally:
        started.cleanup()


@pytest.fixture(scope="module")
def users(public: PublicMetricsDaemon) -> dict[str, str]:
    made = {}
    with public.client() as root:
        for name in ("alice", "bob"):
            response = root.post("/v1/tokens", json={"name": name, "role": "user"})
            assert response.status_code == 201, response.text
            made[name] = response.json()["token"]
    return made


@pytest.fixture
def root(public: PublicMetricsDaemon) -> Iterator[httpx.Client]:
    """An admin client on the socket that ends every lease afterwards."""
    with public.client() as client:
        yield client
        for lease in client.get("/v1/leases").json():
            client.delete(f"/v1/leases/{lease['lease_id']}")


class Scrape:
    """One parsed scrape: families by name, samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        return sum(s.value for s in found)


def scrape(client: httpx.Client) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def devices_of(client: httpx.Client) -> list[dict[str, Any]]:
    inventory = client.get("/v1/inventory").json()
    return [d for g in inventory["gpus"] for gi in g["gpu_instances"] for d in gi["mig_devices"]]


def test_names_follow_the_prometheus_conventions(root: httpx.Client) -> None:
    root.post("/v1/plan", json=split(2))  # so that every family has at least one sample
    found = scrape(root)
    expected = {
        "migctl_lease_requests_waiting": "gauge",
        "migctl_reconfigurations": "counter",
        "migctl_reconfiguration_duration_seconds": "histogram",
        "migctl_planner_duration_seconds": "histogram",
        "migctl_http_requests": "counter",
        "migctl_http_request_duration_seconds": "histogram",
        "migctl_gpu_info": "gauge",
        "migctl_gpu_memory_total_bytes": "gauge",
        "migctl_mig_device_info": "gauge",
        "migctl_mig_device_memory_used_bytes": "gauge",
        "migctl_mig_device_leased": "gauge",
        "migctl_leases_active": "gauge",
    }
    assert {name: found.families[name].type for name in expected} == expected
    for name, family in found.families.items():
        assert name.startswith("migctl_"), name
        assert not any(unit in name for unit in ("_mib", "_ms", "_milliseconds", "_gib", "_kb"))
        if "duration" in name:
            assert name.endswith("_seconds") and family.type == "histogram", name
        if "memory_total" in name or "memory_used" in name:
            assert name.endswith("_bytes"), name
        if family.type == "counter":
            names = {s.name for s in family.samples}
            assert f"{name}_total" in names and names <= {f"{name}_total", f"{name}_created"}


def test_device_samples_carry_the_inventory_and_the_lease_holders(
    public: PublicMetricsDaemon, users: dict[str, str], root: httpx.Client
) -> None:
    with public.tcp(users["alice"]) as alice, public.tcp(users["bob"]) as bob:
        mine = alice.post("/v1/leases", json={"profile": "1g.10gb"}).json()
        theirs = bob.post("/v1/leases", json={"profile": "1g.10gb"}).json()
        as_admin, as_alice = scrape(root), scrape(alice)
    devices = devices_of(root)
    assert len(as_admin.find("migctl_mig_device_info")) == len(devices) == 7
    for device in devices:
        labels = {
            "gpu": str(device["gpu_index"]),
            "gi": str(device["gi_id"]),
            "ci": str(device["ci_id"]),
            "uuid": device["uuid"],
            "profile": device["ci_profile"],
        }
        (info,) = as_admin.find("migctl_mig_device_info", **labels)
        assert set(info.labels) >= DEVICE_LABELS and info.value == 1
        total = as_admin.value("migctl_mig_device_memory_total_bytes", uuid=device["uuid"])
        assert total == device["memory_total_mib"] * MIB
    holders = {lease["uuid"]: lease["user"] for lease in (mine, theirs)}
    for sample in as_admin.find("migctl_mig_device_leased"):
        expected = holders.get(sample.labels["uuid"])
        assert (sample.value, sample.labels["holder"]) == (int(bool(expected)), expected or "")
    assert as_admin.value("migctl_leases_active") == 2
    seen_by_alice = {
        s.labels["uuid"]: s.labels["holder"] for s in as_alice.find("migctl_mig_device_leased")
    }
    assert seen_by_alice[mine["uuid"]] == "alice"
    assert seen_by_alice[theirs["uuid"]] == HIDDEN_HOLDER  # bob's name stays bob's business
    with public.tcp() as anonymous:
        anonymous_view = scrape(anonymous)
    leased = anonymous_view.find("migctl_mig_device_leased", holder=HIDDEN_HOLDER)
    assert {s.labels["uuid"] for s in leased} == set(holders)


def test_applies_and_plans_are_counted_and_timed(root: httpx.Client) -> None:
    before = scrape(root)
    assert root.post("/v1/plan", json=split(2)).status_code == 200
    assert apply_and_wait(root, split(2))["status"] == "succeeded"
    assert apply_and_wait(root, split(2))["status"] == "succeeded"  # nothing to do
    after = scrape(root)
    try:
        assert len(after.find("migctl_mig_device_info")) == 2  # the new layout is what is read
        for what, calls in (("plan", 1), ("targets", 3)):
            name = "migctl_planner_duration_seconds_count"
            assert after.value(name, what=what) - before.value(name, what=what) == calls
        counted = "migctl_reconfigurations_total"
        for result, applies in (("succeeded", 1), ("noop", 1), ("failed", 0)):
            change = after.value(counted, result=result) - before.value(counted, result=result)
            assert change == applies, result
        timed = "migctl_reconfiguration_duration_seconds_count"
        assert after.value(timed) - before.value(timed) == 1  # no-ops are not timed
    finally:
        assert apply_and_wait(root, split(7))["status"] == "succeeded"


def test_http_requests_are_labelled_by_route_template_not_by_path(root: httpx.Client) -> None:
    before = scrape(root)
    for path in ("/v1/leases/4242", "/v1/leases/MIG-no-such-device", "/no/such/path/4242"):
        assert root.get(path).status_code == 404
    assert root.request("BREW", "/v1/health").status_code == 405
    after = scrape(root)
    name = "migctl_http_requests_total"
    template = {"method": "GET", "route": "/v1/leases/{target}", "status": "404"}
    assert after.value(name, **template) - before.value(name, **template) == 2
    unmatched = {"method": "GET", "route": "(unmatched)", "status": "404"}
    assert after.value(name, **unmatched) - before.value(name, **unmatched) == 1
    assert after.value(name, method="OTHER", route="/v1/health", status="405") >= 1
    label_values = {v for s in after.samples for v in s.labels.values()}
    assert not [v for v in label_values if "4242" in v or "no-such" in v or "BREW" in v]
    assert after.value("migctl_http_request_duration_seconds_count", route="/metrics") >= 1


def test_waiting_lease_requests_are_a_gauge(
    public: PublicMetricsDaemon, users: dict[str, str], root: httpx.Client
) -> None:
    with public.tcp(users["alice"]) as alice:
        held = [alice.post("/v1/leases", json={}).json() for _ in range(7)]
        assert scrape(root).value("migctl_lease_requests_waiting") == 0
        answer: list[httpx.Response] = []

        def wait_for_one() -> None:
            with public.tcp(users["bob"]) as bob:
                answer.append(bob.post("/v1/leases", json={"wait_seconds": 60}))

        waiter = threading.Thread(target=wait_for_one)
        waiter.start()
        deadline = time.monotonic() + 30
        while scrape(root).value("migctl_lease_requests_waiting") != 1:
            assert time.monotonic() < deadline, "the waiting request never showed"
            time.sleep(0.05)
        alice.delete(f"/v1/leases/{held[0]['lease_id']}")
        waiter.join(timeout=60)
    assert answer[0].status_code == 201, answer[0].text
    assert scrape(root).value("migctl_lease_requests_waiting") == 0


def test_who_may_read_metrics(
    daemon: Daemon, tokens: dict[str, str], public: PublicMetricsDaemon
) -> None:
    with daemon.tcp() as anonymous:
        refused = anonymous.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
    with daemon.tcp(tokens["bob"]) as bob, daemon.client() as on_socket:
        assert bob.get("/metrics").status_code == 200
        assert on_socket.get("/metrics").status_code == 200
    with public.tcp() as anonymous, public.tcp("migctl_0000_wrong") as wrong:
        assert anonymous.get("/metrics").status_code == 200
        assert wrong.get("/metrics").status_code == 401  # a bad token is never ignored
        assert anonymous.get("/v1/status").status_code == 401  # only /metrics is public
