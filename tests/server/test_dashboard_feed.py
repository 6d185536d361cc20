"""The dashboard without a browser: who gets the page and the feed, what the feed says to whom.

Runs against the session's shared daemon (a simulated H100 split into 7 x 1g.10gb). The page
and its assets hold no data and are served to anyone; ``/v1/dashboard`` needs the API's
authentication and applies its privacy rules.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx

from tests.server.daemon import Daemon

STATIC = Path(__file__).resolve().parents[2] / "src" / "migctl" / "server" / "static"


def test_the_page_and_its_assets_are_public_and_locked_down(daemon: Daemon) -> None:
    with daemon.tcp() as anonymous:
        page = anonymous.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            asset = anonymous.get(f"/dashboard/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
            assert asset.content == (STATIC / name).read_bytes()
        assert anonymous.get("/dashboard/..%2Fapp.py").status_code == 404
        assert anonymous.get("/dashboard/missing.js").status_code == 404
        home = anonymous.get("/", follow_redirects=False)
        assert home.status_code == 307 and home.headers["location"] == "/dashboard"
        feed = anonymous.get("/v1/dashboard")
        assert feed.status_code == 401 and feed.json()["error"] == "unauthenticated"


def test_no_answer_of_the_daemon_loads_code_from_elsewhere(
    daemon: Daemon, root: httpx.Client
) -> None:
    """The token lives in the daemon's origin: no swagger-ui from a CDN, a strict CSP on every
    answer (JSON, errors, the redirect), the dashboard's own policy on its files."""
    with daemon.tcp() as anonymous:
        docs = anonymous.get("/v1/docs")
        assert docs.status_code == 404 and "cdn" not in docs.text.lower()
        assert anonymous.get("/v1/openapi.json").json()["info"]["title"] == "migctl service"
        answers = [
            docs,
            anonymous.get("/v1/health"),
            anonymous.get("/v1/openapi.json"),
            anonymous.get("/v1/status"),  # 401
            anonymous.get("/", follow_redirects=False),
        ]
    answers += [root.get("/v1/inventory"), root.post("/v1/leases", content=b"{")]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, answer
        assert "script-src" not in policy and "connect-src" not in policy, answer
        assert answer.headers["x-content-type-options"] == "nosniff", answer
    with daemon.tcp() as anonymous:
        page = anonymous.get("/dashboard")
    assert page.headers.get_list("content-security-policy") == [
        page.headers["content-security-policy"]
    ]  # the page's own policy, not a second one
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no external font: the dashboard must work on an offline machine."""
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name
        assert "@import" not in text and "url(" not in text, path.name


def test_the_feed_shows_owners_to_their_owner_and_admins_only(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    with daemon.tcp(tokens["alice"]) as alice, daemon.tcp(tokens["bob"]) as bob:
        mine = alice.post("/v1/leases", json={"profile": "1g.10gb", "job": "alice-job"}).json()
        theirs = bob.post("/v1/leases", json={"profile": "1g.10gb", "job": "bob-job"}).json()
        seen_by_alice = alice.get("/v1/dashboard").json()
    seen_by_root = root.get("/v1/dashboard").json()
    assert seen_by_alice["you"]["name"] == "alice" and seen_by_root["you"]["role"] == "admin"
    for feed, bob_visible in ((seen_by_alice, False), (seen_by_root, True)):
        devices = {
            d["uuid"]: d
            for g in feed["gpus"]
            for gi in g["gpu_instances"]
            for d in gi["mig_devices"]
        }
        assert len(devices) == 7
        assert devices[mine["uuid"]]["lease"]["user"] == "alice"
        bob_lease = devices[theirs["uuid"]]["lease"]
        assert bob_lease["redacted"] is not bob_visible
        assert (bob_lease["user"] == "bob") is bob_visible
    assert "bob-job" not in str(seen_by_alice)


def test_the_feed_lists_waiting_requests_privately(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    with daemon.tcp(tokens["alice"]) as alice:
        held = [alice.post("/v1/leases", json={}).json() for _ in range(7)]
        answer: list[httpx.Response] = []

        def wait_for_one() -> None:
            with daemon.tcp(tokens["bob"]) as bob:
                body = {"memory_mib": 9000, "wait_seconds": 60, "job": "bob-eval"}
                answer.append(bob.post("/v1/leases", json=body))

        waiter = threading.Thread(target=wait_for_one)
        waiter.start()
        deadline = time.monotonic() + 30
        while not (as_root := root.get("/v1/dashboard").json())["waiting"]:
            assert time.monotonic() < deadline, "bob's request never showed as waiting"
            time.sleep(0.05)
        as_alice = alice.get("/v1/dashboard").json()
        alice.delete(f"/v1/leases/{held[0]['lease_id']}")
        waiter.join(timeout=60)
    (entry,) = as_root["waiting"]
    assert (entry["user"], entry["job"], entry["memory_mib"]) == ("bob", "bob-eval", 9000)
    assert entry["position"] == 1 and entry["since"] <= as_root["generated_at"]
    (hidden,) = as_alice["waiting"]
    assert hidden["redacted"] and hidden["user"] is None and hidden["job"] is None
    assert hidden["memory_mib"] == 9000  # what is asked for is public, not who asks
    assert answer[0].status_code == 201
    assert not root.get("/v1/dashboard").json()["waiting"]


def test_recent_reconfigurations_hide_messages_from_users(
    daemon: Daemon, tokens: dict[str, str], root: httpx.Client
) -> None:
    as_root = root.get("/v1/dashboard").json()["reconfigurations"]
    with daemon.tcp(tokens["alice"]) as alice:
        as_alice = alice.get("/v1/dashboard").json()["reconfigurations"]
    jobs = {job["job_id"]: job for job in root.get("/v1/jobs").json()}
    assert as_root and [j["job_id"] for j in as_root] == sorted(jobs, reverse=True)[:8]
    for shown in as_root:
        job = jobs[shown["job_id"]]
        assert (shown["status"], shown["message"]) == (job["status"], job["message"])
        assert shown["requested_by"] == job["requested_by"]
    apply_job = next(j for j in as_root if j["kind"] == "apply")
    assert apply_job["gpus"] == [0]
    assert [j["job_id"] for j in as_alice] == [j["job_id"] for j in as_root]
    assert all(j["message"] is None for j in as_alice)


def test_socket_requests_naming_a_dns_domain_are_refused(
    daemon: Daemon, tokens: dict[str, str]
) -> None:
    """DNS rebinding: a web page whose domain now points at a forwarded socket (``ssh -L``)
    sends its own domain as Host; without a token it must not act as the socket's user."""
    with daemon.client() as on_socket:
        for host in ("migctl", "localhost:8123", "127.0.0.1:8123", "[::1]:8123", "a.localhost"):
            response = on_socket.get("/v1/dashboard", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in ("rebound.example", "rebound.example:8123", "gpu-server.corp.example."):
            refused = on_socket.get("/v1/whoami", headers={"Host": host})
            assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"
            assert host in refused.json()["message"]
        assert on_socket.get("/metrics", headers={"Host": "rebound.example"}).status_code == 403
        assert on_socket.get("/v1/health", headers={"Host": "rebound.example"}).status_code == 200
    with daemon.client(token=tokens["bob"]) as with_token:
        response = with_token.get("/v1/whoami", headers={"Host": "rebound.example"})
        assert response.status_code == 200 and response.json()["name"] == "bob"
