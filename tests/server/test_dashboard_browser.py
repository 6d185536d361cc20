"""The dashboard in headless Chromium against a real daemon on a simulated DGX H100.

The scene (``dashboard_scene``): a different layout on GPUs 0-6, GPU 7 with MIG off, leases
held by alice, bob and carol (tokens), processes running without a lease, and alice waiting for
a 7g.80gb that bob holds. The page is checked through its DOM (what is drawn where, for whom),
then the machine changes (bob releases, alice's waiting request gets the device; an admin
applies a layout to GPU 7) and the same page must follow without a reload.

Skipped when Debian's chromium or Playwright is missing, unless ``MIGCTL_REQUIRE_BROWSER=1``
(set by .ci/run after installing chromium): then a missing browser fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import instances
from tests.server.daemon import Daemon
from tests.server.dashboard_scene import (
    BUSY,
    VIEWPORT_SIZE,
    Scene,
    browser,
    browser_missing,
    build,
    forwarded,
)

REQUIRE_ENV = "MIGCTL_REQUIRE_BROWSER"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    missing = browser_missing()
    if missing is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {missing}")
        pytest.skip(f"the dashboard browser test needs Chromium and Playwright: {missing}")
    daemon = Daemon("dgx-h100")
    built: Scene | None = None
    try:
        daemon.start()
        built = build(daemon)
        yield built
    except BaseException:
        print(daemon.log())
        raise
    finally:
        if built is not None:
            built.close()
        daemon.cleanup()


def url(scene: Scene, token_name: str | None = None) -> str:
    fragment = f"#token={scene.tokens[token_name]}" if token_name else ""
    return f"http://127.0.0.1:{scene.daemon.port}/dashboard{fragment}"


def gpus_of(scene: Scene) -> dict[int, dict[str, Any]]:
    return {gpu["index"]: gpu for gpu in scene.inventory()["gpus"]}


def drawn_instances(page: Any, gpu: int) -> dict[tuple[int, int, int], set[str]]:
    """(GI id, start, size) -> the MIG device uuids drawn in that GI's box."""
    rows = page.eval_on_selector_all(
        f'article[data-gpu="{gpu}"] .gi',
        """boxes => boxes.map(b => [+b.dataset.gi, +b.dataset.start, +b.dataset.size,
            [...b.querySelectorAll('.device[data-uuid]')].map(d => d.dataset.uuid)])""",
    )
    return {(gi, start, size): set(uuids) for gi, start, size, uuids in rows}


def gib(mib: int) -> str:
    return f"{mib / 1024:.1f}"


def test_the_dashboard_draws_gpus_slices_instances_and_holders(
    scene: Scene, tmp_path: Path
) -> None:
    gpus = gpus_of(scene)
    with browser() as page:
        page.goto(url(scene, "ops"))
        page.wait_for_selector(".device[data-holder]", timeout=WAIT_MS)
        assert page.evaluate("location.hash") == ""  # the token left the address bar
        assert page.locator("article.gpu").count() == 8
        for index, gpu in gpus.items():
            card = page.locator(f'article[data-gpu="{index}"]')
            assert card.locator(".gpu-uuid").inner_text() == gpu["uuid"]
            memory = f"{gib(gpu['memory_used_mib'])} / {gib(gpu['memory_total_mib'])} GiB"
            assert card.locator(".gpu-memory").inner_text() == memory
            expected = {
                (gi["id"], gi["placement"]["start"], gi["placement"]["size"]): {
                    d["uuid"] for d in gi["mig_devices"]
                }
                for gi in gpu["gpu_instances"]
            }
            assert drawn_instances(page, index) == expected, f"GPU {index}"
        assert "MIG off" in page.locator('article[data-gpu="7"]').inner_text()
        _check_holders_and_states(page, scene, gpus)
        _check_widths(page)
        listed = page.eval_on_selector_all(
            "#devices tbody tr", "rows => rows.map(r => r.innerText)"
        )
        devices = [d for g in gpus.values() for gi in g["gpu_instances"] for d in gi["mig_devices"]]
        assert len(listed) == len(devices)
        for device in devices:  # every full UUID is on the page
            assert any(device["uuid"] in row for row in listed), device["uuid"]
        waiting = page.locator("#waiting tbody tr")
        assert waiting.count() == 1 and "alice (eval)" in waiting.inner_text()
        assert "7g.80gb" in waiting.inner_text()
        job = page.locator('#jobs tbody tr[data-job="1"]')
        assert job.get_attribute("data-status") == "succeeded" and "apply" in job.inner_text()
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = (int.from_bytes(shot.read_bytes()[at : at + 4], "big") for at in (16, 20))
    assert (width, height) == VIEWPORT_SIZE


def _check_holders_and_states(page: Any, scene: Scene, gpus: dict[int, dict[str, Any]]) -> None:
    drawn = {
        uuid: (state, holder, colour)
        for uuid, state, holder, colour in page.eval_on_selector_all(
            ".gi .device[data-uuid]",
            """ds => ds.map(d => [d.dataset.uuid, d.dataset.state, d.dataset.holder || null,
                getComputedStyle(d).backgroundColor])""",
        )
    }
    held = {lease["uuid"]: user for user, leases in scene.leases.items() for lease in leases}
    by_gpu = {
        i: [d for gi in g["gpu_instances"] for d in gi["mig_devices"]] for i, g in gpus.items()
    }
    busy = {by_gpu[gpu][nth]["uuid"] for gpu, nth, _ in BUSY}
    for uuid, (state, holder, _) in drawn.items():
        if uuid in held:
            assert (state, holder) == ("leased", held[uuid]), uuid
        else:
            assert (state, holder) == ("busy" if uuid in busy else "idle", None), uuid
    colours = {user: {drawn[u][2] for u, h in held.items() if h == user} for user in scene.leases}
    assert all(len(shades) == 1 for shades in colours.values()), colours  # one colour per tenant
    assert len({shades.pop() for shades in colours.values()}) == len(colours)  # all different
    idle = {drawn[u][2] for u, (state, _, _) in drawn.items() if state == "idle"}
    assert len(idle) == 1 and not idle & {c for shades in colours.values() for c in shades}


def _check_widths(page: Any) -> None:
    """Boxes are as wide as their memory slices: GPU 1's GI on slices 4-7 is one box, half
    the bar, four times its 1-slice neighbour."""
    bar = page.locator('article[data-gpu="1"] .slices').bounding_box()
    wide = page.locator('article[data-gpu="1"] .gi[data-start="4"]').bounding_box()
    narrow = page.locator('article[data-gpu="1"] .gi[data-start="2"]').bounding_box()
    assert page.locator('article[data-gpu="1"] .gi[data-start="4"]').count() == 1
    assert 3.8 < wide["width"] / narrow["width"] < 4.4
    assert 0.45 < wide["width"] / bar["width"] < 0.55


def test_the_dashboard_follows_changes_without_a_reload(scene: Scene) -> None:
    with browser() as page:
        page.goto(url(scene, "ops"))
        page.wait_for_selector("#waiting tbody tr", timeout=WAIT_MS)
        page.evaluate("window.sameDocument = true")
        (bob_big,) = [lease for lease in scene.leases["bob"] if lease["profile"] == "7g.80gb"]
        with scene.user("bob") as bob:
            assert bob.delete(f"/v1/leases/{bob_big['lease_id']}").status_code == 200
        handed_over = f'.device[data-uuid="{bob_big["uuid"]}"][data-holder="alice"]'
        page.wait_for_selector(handed_over, timeout=WAIT_MS)  # alice's waiting request got it
        page.wait_for_selector("#waiting tbody tr", state="detached", timeout=WAIT_MS)
        assert scene.waited and scene.waited[0].status_code == 201
        layout = {"7": {"gis": [{"profile": "3g.40gb", "placement": "0:4"}]}}
        with scene.user("ops") as ops:
            response = ops.post("/v1/apply", json=instances(layout))
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
        page.wait_for_selector(f'#jobs tbody tr[data-job="{job_id}"][data-status="succeeded"]')
        page.wait_for_selector('article[data-gpu="7"] .gi[data-start="0"][data-size="4"]')
        assert page.locator('article[data-gpu="7"] .free').count() == 4  # slices 4-7 are free
        assert page.evaluate("window.sameDocument") is True  # the same page, never reloaded


def test_a_user_sees_other_tenants_anonymously(scene: Scene) -> None:
    with browser() as page:
        page.goto(url(scene))
        page.wait_for_selector("#login:not([hidden])", timeout=WAIT_MS)  # TCP needs a token
        page.fill("#token", "migctl_0000_wrong")
        page.click("#login button")
        page.wait_for_selector("#login-error:has-text('refused')", timeout=WAIT_MS)
        page.fill("#token", scene.tokens["carol"])
        page.click("#login button")
        page.wait_for_selector(".device[data-holder]", timeout=WAIT_MS)
        holders = page.eval_on_selector_all(
            ".gi .device[data-holder]", "ds => ds.map(d => d.dataset.holder)"
        )
        assert holders.count("carol") == len(scene.leases["carol"])
        assert set(holders) == {"carol", "another user"}
        content = page.content()
        assert "alice" not in content and "bob" not in content
        assert page.locator("#you").inner_text().startswith("carol · user · token")


def test_through_a_forwarded_socket_the_kernel_names_the_user(scene: Scene) -> None:
    """Like ``ssh -L 8123:/run/migctl/migctl.sock``: no token, the socket peer is the user; a
    page under another (rebound) domain name gets nothing."""
    rebind = "--host-resolver-rules=MAP rebound.example 127.0.0.1"  # what DNS rebinding does
    with forwarded(scene.daemon.socket_path) as port, browser(rebind) as page:
        page.goto(f"http://localhost:{port}/dashboard")
        page.wait_for_selector(".device[data-holder]", timeout=WAIT_MS)
        assert page.locator("#you").inner_text().startswith("root · admin · socket")
        assert page.locator("#login").is_hidden()
        page.goto(f"http://rebound.example:{port}/dashboard")
        page.wait_for_selector('#live[data-state="offline"]', timeout=WAIT_MS)
        assert "refused" in page.locator("#live").inner_text()
        assert page.locator(".device").count() == 0  # nothing about the machine was shown
