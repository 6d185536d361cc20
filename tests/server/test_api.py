"""The REST API against a real daemon: every route's authentication and roles, leases, jobs."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import httpx
import pytest

from migctl.server.openapi import schema
from tests.server.conftest import apply_and_wait, instances, layout, split, wait_job
from tests.server.daemon import Daemon

PATH_VALUES = {"job_id": "1", "target": "1", "token": "nobody", "gpu": "0", "gi": "7"}
ADMIN_ROUTES = [
    ("POST", "/v1/apply", split(7)),
    ("POST", "/v1/recover", {}),
    ("POST", "/v1/mig-mode", {"gpus": "0", "enabled": True}),
    ("POST", "/v1/gpus/0/gpu-instances", {"profiles": "1g.10gb"}),
    ("POST", "/v1/gpus/0/gpu-instances/destroy", {"ids": [7]}),
    ("POST", "/v1/gpus/0/gpu-instances/7/compute-instances", {}),
    ("POST", "/v1/gpus/0/gpu-instances/7/compute-instances/destroy", {"ids": [0]}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/1", None),
    ("GET", "/v1/tokens", None),
    ("POST", "/v1/tokens", {"name": "sneaky", "role": "admin"}),
    ("DELETE", "/v1/tokens/ops", None),
    ("GET", "/v1/audit", None),
]


def every_route() -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for path, methods in schema()["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
        routes.extend((method.upper(), concrete) for method in methods)
    return sorted(routes)


def body_for(method: str, path: str) -> dict[str, Any] | None:
    if method in {"GET", "DELETE"}:
        return None
    bodies: dict[str, dict[str, Any]] = {
        "/v1/apply": split(7),
        "/v1/plan": split(7),
        "/v1/check": split(7),
        "/v1/leases": {"profile": "1g.10gb"},
        "/v1/tokens": {"name": "x", "role": "user"},
        "/v1/mig-mode": {"enabled": True},
        "/v1/gpus/0/gpu-instances": {"profiles": "1g.10gb"},
    }
    return bodies.get(path, {})


@pytest.mark.parametrize(("method", "path"), every_route())
def test_anonymous_tcp_gets_401_on_every_route_but_health(
    daemon: Daemon, method: str, path: str
) -> None:
    with daemon.tcp() as anonymous:
        response = anonymous.request(method, path, json=body_for(method, path))
    if path in {"/v1/health", "/v1/openapi.json"}:
        assert response.status_code == 200
        return
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"
    assert "bearer token" in response.json()["message"]


def test_a_wrong_token_is_401_even_on_the_socket(daemon: Daemon) -> None:
    for bad in ("migctl_0000_nope", "garbage"):
        with daemon.client(token=bad) as client:
            response = client.get("/v1/whoami")
        assert response.status_code == 401
    with daemon.client() as client:
        response = client.get("/v1/whoami", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401 and "Bearer" in response.json()["message"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_a_user_gets_403_on_admin_routes_and_nothing_changes(
    daemon: Daemon, tokens: dict[str, str], method: str, path: str, body: Any
) -> None:
    with daemon.client() as root:
        jobs_before = root.get("/v1/jobs").json()
        tokens_before = _without_last_use(root.get("/v1/tokens").json())
    with daemon.tcp(tokens["alice"]) as alice:
        response = alice.request(method, path, json=body)
    assert response.status_code == 403, response.text
    error = response.json()
    assert error["error"] == "permission_denied" and error["exit_code"] == 4
    assert "admin role" in error["message"] and "alice" in error["message"]
    with daemon.client() as root:
        assert root.get("/v1/jobs").json() == jobs_before
        assert _without_last_use(root.get("/v1/tokens").json()) == tokens_before


def _without_last_use(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in t.items() if k != "last_used_at"} for t in tokens]


def test_roles_on_the_socket_and_by_token(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.client() as root:
        assert root.get("/v1/whoami").json() == {
            "name": "root", "uid": 0, "role": "admin", "via": "socket", "token_name": None,
        }  # fmt: skip
    with daemon.tcp(tokens["ops"]) as ops:
        me = ops.get("/v1/whoami").json()
        assert (me["role"], me["via"], me["token_name"]) == ("admin", "token", "ops")
        assert ops.get("/v1/tokens").status_code == 200
    with daemon.client(token=tokens["bob"]) as bob_on_socket:
        assert bob_on_socket.get("/v1/whoami").json()["role"] == "user"


def test_user_routes_answer_users(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.tcp(tokens["bob"]) as bob:
        inventory = bob.get("/v1/inventory").json()
        devices = [d for i in inventory["gpus"][0]["gpu_instances"] for d in i["mig_devices"]]
        assert len(devices) == 7 and {d["ci_profile"] for d in devices} == {"1g.10gb"}
        model = bob.get("/v1/models").json()["models"]["0"]
        assert model["key"] == "h100-80gb-hbm3" and model["memory_slices"] == 8
        assert bob.get("/v1/models?gpus=3").status_code == 404
        assert bob.post("/v1/check", json=split(7)).json()["matches"] is True
        exported = bob.get("/v1/export?format=mig-parted&name=now")
        assert exported.status_code == 200 and '"1g.10gb": 7' in exported.text
        status = bob.get("/v1/status").json()
        assert status["gpus"] == 1 and status["mig_devices"] == 7 and status["you"]["name"] == "bob"
        assert bob.get("/v1/layout").json()["gpus"][0]["layout"]["gis"][0]["profile"] == "1g.10gb"
        plan = bob.post("/v1/plan", json=split(2)).json()
        ops = plan["plans"][0]["ops"]
        assert {op["op"] for op in ops} >= {"destroy_gi", "create_gi"}
        assert plan["reasons"] == ["GPU 0: 2 x 3g.40gb"]


def test_gpu_profiles_are_read_live_with_free_counts(
    daemon: Daemon, tokens: dict[str, str]
) -> None:
    with daemon.tcp(tokens["bob"]) as bob:
        found = bob.get("/v1/gpus/0/profiles").json()
        missing = bob.get("/v1/gpus/5/profiles")
    assert found["gpu_index"] == 0 and found["model"]["key"] == "h100-80gb-hbm3"
    counts = {p["profile"]["name"]: (p["free"], p["total"]) for p in found["gi_profiles"]}
    assert counts["1g.10gb"] == (0, 7) and counts["3g.40gb"] == (0, 2)
    assert len({ci["gi_id"] for ci in found["ci_profiles"]}) == 7  # every GI of the split
    for ci in found["ci_profiles"]:  # each GI's one CI is already there
        assert (ci["profile"]["name"], ci["free"], ci["total"]) == ("1g.10gb", 0, 1)
    assert missing.status_code == 404 and "no GPU '5'" in missing.json()["message"]


def test_leases_show_owner_details_to_their_owner_and_admins_only(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    with daemon.tcp(tokens["alice"]) as alice, daemon.tcp(tokens["bob"]) as bob:
        granted = alice.post("/v1/leases", json={"profile": "1g.10gb", "job": "secret-train"})
        assert granted.status_code == 201, granted.text
        lease = granted.json()
        assert (lease["user"], lease["job"], lease["mine"]) == ("alice", "secret-train", True)
        seen_by_bob = bob.get(f"/v1/leases/{lease['lease_id']}").json()
        assert seen_by_bob["redacted"] and not seen_by_bob["mine"]
        assert seen_by_bob["user"] is None and seen_by_bob["job"] is None
        assert seen_by_bob["uuid"] == lease["uuid"]  # that the device is leased is public
        inventory = bob.get("/v1/inventory").text
        assert "alice" not in inventory and "secret-train" not in inventory
        refused = bob.delete(f"/v1/leases/{lease['lease_id']}")
        assert refused.status_code == 403
        assert "alice" not in refused.text and "secret-train" not in refused.text
        taken = bob.post("/v1/leases", json={"uuid": lease["uuid"]})
        assert taken.status_code == 409 and "alice" not in taken.text
        assert root.get(f"/v1/leases/{lease['uuid']}").json()["job"] == "secret-train"
        ended = root.delete(f"/v1/leases/{lease['lease_id']}").json()
        assert ended["end_reason"] == "revoked" and ended["ended_by"] == "root"


def test_acquire_release_renew_by_the_owner(daemon: Daemon, tokens: dict[str, str]) -> None:
    with daemon.tcp(tokens["alice"]) as alice, daemon.tcp(tokens["bob"]) as bob:
        lease = alice.post("/v1/leases", json={"memory_mib": 9000, "ttl_seconds": 60}).json()
        assert lease["profile"] == "1g.10gb" and lease["ttl_seconds"] == 60
        renewed = alice.post(f"/v1/leases/{lease['lease_id']}/renew", json={"ttl_seconds": 600})
        assert renewed.json()["expires_at"] > lease["expires_at"]
        assert bob.post(f"/v1/leases/{lease['lease_id']}/renew", json={}).status_code == 403
        assert [x["lease_id"] for x in alice.get("/v1/leases?mine=true").json()] == [
            lease["lease_id"]
        ]
        released = alice.delete(f"/v1/leases/{lease['uuid']}").json()
        assert released["end_reason"] == "released" and not released["active"]
        again = alice.delete(f"/v1/leases/{lease['lease_id']}")
        assert again.status_code == 409 and again.json()["error"] == "invalid_state"
        history = alice.get("/v1/leases?history=true&mine=true").json()
        assert lease["lease_id"] in [x["lease_id"] for x in history]


def test_a_waiting_acquire_gets_the_device_a_release_frees(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    with daemon.tcp(tokens["alice"]) as alice:
        held = [alice.post("/v1/leases", json={}).json() for _ in range(7)]
        assert len({lease["uuid"] for lease in held}) == 7
        full = alice.post("/v1/leases", json={"profile": "1g.10gb"})
        assert full.status_code == 409 and full.json()["error"] == "insufficient_resources"
        answer: dict[str, httpx.Response] = {}

        def wait_for_one() -> None:
            with daemon.tcp(tokens["bob"]) as bob:
                answer["bob"] = bob.post("/v1/leases", json={"wait_seconds": 60})

        waiter = threading.Thread(target=wait_for_one)
        waiter.start()
        while root.get("/v1/status").json()["lease_waiters"] == 0:
            pass  # until bob's request waits in the daemon
        alice.delete(f"/v1/leases/{held[3]['lease_id']}")
        waiter.join(timeout=60)
    assert answer["bob"].status_code == 201, answer["bob"].text
    assert answer["bob"].json()["uuid"] == held[3]["uuid"]


def test_token_revocation_takes_effect_at_once(daemon: Daemon, root: httpx.Client) -> None:
    created = root.post("/v1/tokens", json={"name": "temp", "role": "user", "user": "carol"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert created.json()["info"]["owner"] == "carol"
    with daemon.tcp(secret) as carol:
        assert carol.get("/v1/whoami").json()["name"] == "carol"
        assert root.delete("/v1/tokens/temp").json()["active"] is False
        assert carol.get("/v1/whoami").status_code == 401
    listed = {t["name"]: t for t in root.get("/v1/tokens").json()}
    assert listed["temp"]["revoked_by"] == "root" and listed["temp"]["last_used_at"] is not None
    assert root.post("/v1/tokens", json={"name": "ops", "role": "user"}).status_code == 409
    assert "token" not in json.dumps(root.get("/v1/tokens").json()).replace('"token_id"', "")


def test_the_audit_log_records_mutations_and_refusals_without_secrets(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    with daemon.tcp(tokens["alice"]) as alice:
        assert alice.post("/v1/apply", json=split(7)).status_code == 403
    with daemon.tcp() as anonymous:
        assert anonymous.delete("/v1/leases/1").status_code == 401
    entries = root.get("/v1/audit?limit=20").json()
    refused = next(e for e in entries if e["path"] == "/v1/apply" and e["actor"] == "alice")
    assert (refused["status"], refused["result"], refused["via"]) == (403, "error", "token")
    assert refused["detail"]["token"] == "alice"
    anonymous_row = next(e for e in entries if e["actor"] == "anonymous")
    assert (anonymous_row["status"], anonymous_row["via"]) == (401, "tcp")
    everything = json.dumps(root.get("/v1/audit?limit=1000").json())
    assert all(secret not in everything for secret in tokens.values())
    created = [e for e in json.loads(everything) if e["action"] == "token create"]
    assert {e["target"] for e in created} >= {"alice", "bob", "ops"}


def test_apply_is_a_job_and_the_desired_layout_is_kept(daemon: Daemon, root: httpx.Client) -> None:
    response = root.post("/v1/apply", json=instances({"0": _seven_by_targets()}))
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"
    done = wait_job(root, job["job_id"])
    assert done["status"] == "succeeded" and "nothing to do" in done["message"]
    desired = root.get("/v1/layout").json()["gpus"]
    assert desired[0]["updated_by"] == "root" and desired[0]["job_id"] == job["job_id"]
    mode = root.post("/v1/mig-mode", json={"gpus": "0", "enabled": True})
    assert mode.status_code == 202
    assert wait_job(root, mode.json()["job_id"])["status"] == "succeeded"
    assert root.post("/v1/mig-mode", json={"gpus": "7", "enabled": True}).status_code == 404
    listed = root.get("/v1/jobs?limit=2").json()
    assert [j["kind"] for j in listed] == ["mig-mode", "apply"]
    assert apply_and_wait(root, split(7))["status"] == "succeeded"


def _seven_by_targets() -> dict[str, Any]:
    return {"mig_enabled": True, "gis": [{"profile": "1g.10gb"} for _ in range(7)]}


def test_an_expired_lease_frees_its_device_for_a_waiter(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    """The daemon's reaper ends a lease whose TTL passed and wakes whoever waits for it."""
    with daemon.tcp(tokens["alice"]) as alice, daemon.tcp(tokens["bob"]) as bob:
        short = alice.post("/v1/leases", json={"profile": "1g.10gb", "ttl_seconds": 0.5}).json()
        waited = bob.post("/v1/leases", json={"uuid": short["uuid"], "wait_seconds": 60})
        assert waited.status_code == 201, waited.text
        assert waited.json()["uuid"] == short["uuid"] and waited.json()["user"] == "bob"
        ended = alice.get(f"/v1/leases/{short['lease_id']}").json()
        assert (ended["active"], ended["end_reason"]) == (False, "expired")


def test_plan_accepts_a_layout_file_in_either_format(
    daemon: Daemon, tokens: dict[str, str]
) -> None:
    native = (
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  small:\n    gpus:\n"
        "      - select: all\n        mig: true\n        instances:\n"
        "          - {profile: 1g.10gb, count: 7}\n"
    )
    mig_parted = (
        "version: v1\nmig-configs:\n  all-3g:\n    - devices: all\n      mig-enabled: true\n"
        "      mig-devices: {3g.40gb: 2}\n"
    )
    with daemon.tcp(tokens["bob"]) as bob:
        for text, config, profile, count in (
            (native, "small", "1g.10gb", 7),
            (mig_parted, "all-3g", "3g.40gb", 2),
        ):
            reply = bob.post("/v1/plan", json=layout(text, config))
            assert reply.status_code == 200, reply.text
            final = reply.json()["plans"][0]["final"]  # the layout the plan reaches
            assert [gi["profile"] for gi in final] == [profile] * count
        bad = bob.post("/v1/plan", json=layout(native.replace("1g.10gb", "1g.99gb"), "small"))
        assert bad.status_code == 422 and "1g.99gb" in bad.json()["message"]
        narrowed = bob.post("/v1/plan", json=layout(native, "small", gpus=[0]))
        assert [plan["gpu"] for plan in narrowed.json()["plans"]] == [0]
        absent = bob.post("/v1/plan", json=layout(native, "small", gpus=[3]))
        assert absent.status_code == 422 and absent.json()["error"] == "not_found"
        assert "no GPU '3'" in absent.json()["message"]
