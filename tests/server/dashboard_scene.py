"""A simulated DGX H100 with a few tenants, and a headless Chromium to look at its dashboard.

Why this exists: the dashboard's browser test and the screenshot in docs/dashboard.png need
the same busy machine: a daemon on ``dgx-h100`` with a different layout on each GPU (GPU 7
keeps MIG off), leases held by three users through their tokens, processes running without a
lease, memory in use, and a lease request waiting in the queue. :func:`browser` opens Debian's
``chromium`` through Playwright (never a downloaded browser); :func:`browser_missing` says why
a test must be skipped. Only tests import this module; ``python -m tests.server.dashboard_scene
--screenshot docs/dashboard.png`` regenerates the screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from migctl.sim import SimControl
from tests.server.conftest import apply_and_wait, instances
from tests.server.daemon import Daemon

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT_SIZE = (1280, 800)
USERS = ("alice", "bob", "carol")


def _gis(*specs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"profile": profile, "placement": placement} for profile, placement in specs]


LAYOUT: dict[str, dict[str, Any]] = {
    "0": {"gis": _gis(*(("1g.10gb", f"{s}:1") for s in range(7)))},
    "1": {"gis": _gis(("2g.20gb", "0:2"), ("1g.10gb", "2:1"), ("1g.10gb", "3:1"), ("3g.40gb", "4:4"))},
    "2": {
        "gis": [
            {"profile": "4g.40gb", "placement": "0:4"},
            {"profile": "3g.40gb", "placement": "4:4", "cis": [{"profile": "1c.3g.40gb"}] * 3},
        ]
    },
    "3": {"gis": _gis(("7g.80gb", "0:8"))},
    "4": {"gis": _gis(*(("1g.20gb", f"{s}:2") for s in (0, 2, 4, 6)))},
    "5": {"gis": _gis(("2g.20gb", "0:2"), ("2g.20gb", "2:2"), ("2g.20gb", "4:2"), ("1g.10gb", "6:1"))},
    "6": {"gis": _gis(("3g.40gb", "0:4"), ("3g.40gb", "4:4"))},
}  # fmt: skip
# (user, GPU, CI profile, MiB its job uses): the leases the scene takes, in this order
LEASES = (
    ("alice", 0, "1g.10gb", 6100),
    ("alice", 0, "1g.10gb", 2300),
    ("alice", 1, "3g.40gb", 31000),
    ("bob", 3, "7g.80gb", 0),  # no job on it: freed, it goes to the waiting request at once
    ("bob", 4, "1g.20gb", 11800),
    ("bob", 4, "1g.20gb", 0),
    ("carol", 2, "4g.40gb", 20500),
    ("carol", 2, "1c.3g.40gb", 7000),
    ("carol", 5, "2g.20gb", 9000),
    ("carol", 6, "3g.40gb", 14000),
)
BUSY = ((0, 5, 3000), (5, 3, 1500))  # (GPU, nth MIG device, MiB): processes without a lease


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install --no-install-recommends chromium)"
    return None


@contextmanager
def browser(*extra_args: str) -> Iterator[Any]:
    """A fresh headless Chromium context (own user-data dir), 1280x800; yields a page."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="migctl-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*CHROMIUM_ARGS, *extra_args],
                viewport={"width": VIEWPORT_SIZE[0], "height": VIEWPORT_SIZE[1]},
                offline=False,
            )
            try:
                yield context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class _Forward(socketserver.BaseRequestHandler):
    """One TCP connection relayed to the daemon's Unix socket, both ways."""

    server: _ForwardServer

    def handle(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            upstream.connect(self.server.socket_path)
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join(timeout=5)


class _ForwardServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    socket_path = ""


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@contextmanager
def forwarded(socket_path: Path) -> Iterator[int]:
    """127.0.0.1:PORT relayed to ``socket_path``, as ``ssh -L PORT:SOCKET`` does; yields PORT.

    The daemon sees the relaying process (this one) as the socket peer.
    """
    server = _ForwardServer(("127.0.0.1", 0), _Forward)
    server.socket_path = str(socket_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Scene:
    """The daemon, the tokens, the leases and the helper processes of the scene."""

    daemon: Daemon
    tokens: dict[str, str] = field(default_factory=dict)
    leases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sleepers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    waiter: threading.Thread | None = None
    waited: list[httpx.Response] = field(default_factory=list)
    _devices: dict[int, list[dict[str, Any]]] | None = None
    _sim: SimControl | None = None

    def user(self, name: str) -> httpx.Client:
        return self.daemon.tcp(self.tokens[name])

    def inventory(self) -> dict[str, Any]:
        with self.daemon.client() as root:
            found: dict[str, Any] = root.get("/v1/inventory").json()
        return found

    def lease_on(self, user: str, gpu: int, profile: str) -> dict[str, Any]:
        """``user`` leases the first free MIG device of ``profile`` on ``gpu`` (by its uuid)."""
        taken = {lease["uuid"] for leases in self.leases.values() for lease in leases}
        free = [
            d["uuid"]
            for d in self.devices()[gpu]
            if d["ci_profile"] == profile and d["uuid"] not in taken
        ]
        with self.user(user) as client:
            response = client.post("/v1/leases", json={"uuid": free[0], "job": "train"})
        assert response.status_code == 201, response.text
        lease: dict[str, Any] = response.json()
        self.leases.setdefault(user, []).append(lease)
        return lease

    def devices(self) -> dict[int, list[dict[str, Any]]]:
        """MIG devices by GPU, as the daemon listed them when the scene was laid out."""
        if self._devices is None:
            self._devices = _devices_by_gpu(self.inventory())
        return self._devices

    def run_on(self, gpu: int, uuid: str, memory_mib: int) -> None:
        """Start a process and attach it to a MIG device (it shows as a job using memory)."""
        sleeper = subprocess.Popen(["sleep", "600"])
        self.sleepers.append(sleeper)
        if self._sim is None:
            self._sim = self.daemon.sim()
        self._sim.attach(sleeper.pid, gpu, uuid, memory_mib, name="train.py")

    def wait_in_queue(self, name: str, profile: str, wait_seconds: float = 60.0) -> None:
        """``name`` asks for ``profile`` and waits (in a thread) until the queue shows it."""

        def ask() -> None:
            body = {"profile": profile, "wait_seconds": wait_seconds, "job": "eval"}
            try:
                with self.user(name) as client:
                    self.waited.append(client.post("/v1/leases", json=body, timeout=120))
            except httpx.HTTPError:
                pass  # the daemon stopped while the request waited (end of the scene)

        self.waiter = threading.Thread(target=ask, daemon=True)
        self.waiter.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.daemon.client() as root:
                if root.get("/v1/dashboard").json()["waiting"]:
                    return
            time.sleep(0.05)
        raise AssertionError("the lease request never showed as waiting")

    def close(self) -> None:
        for sleeper in self.sleepers:
            sleeper.kill()
            sleeper.wait()
        if self.waiter is not None:
            self.waiter.join(timeout=5)


def _make_tokens(root: httpx.Client) -> dict[str, str]:
    made = {}
    for name, role in (*((user, "user") for user in USERS), ("ops", "admin")):
        response = root.post("/v1/tokens", json={"name": name, "role": role})
        assert response.status_code == 201, response.text
        made[name] = response.json()["token"]
    return made


def build(daemon: Daemon) -> Scene:
    """Lay out the machine, lease devices as the three users, start jobs, queue a request."""
    scene = Scene(daemon)
    with daemon.client() as root:
        scene.tokens = _make_tokens(root)
        job = apply_and_wait(root, instances(LAYOUT))
        assert job["status"] == "succeeded", job
    for user, gpu, profile, memory_mib in LEASES:
        lease = scene.lease_on(user, gpu, profile)
        if memory_mib:
            scene.run_on(gpu, lease["uuid"], memory_mib)
    for gpu, nth, memory_mib in BUSY:
        scene.run_on(gpu, scene.devices()[gpu][nth]["uuid"], memory_mib)
    scene.wait_in_queue("alice", "7g.80gb")
    return scene


def _devices_by_gpu(inventory: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    return {
        gpu["index"]: [d for gi in gpu["gpu_instances"] for d in gi["mig_devices"]]
        for gpu in inventory["gpus"]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the dashboard of the scene.")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args(argv)
    daemon = Daemon("dgx-h100").start()
    scene = build(daemon)
    try:
        with browser() as page:
            page.goto(f"http://127.0.0.1:{daemon.port}/dashboard#token={scene.tokens['ops']}")
            page.wait_for_selector(".device[data-holder]")
            page.screenshot(path=str(args.screenshot))
        print(f"wrote {args.screenshot}")
    finally:
        scene.close()
        daemon.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
