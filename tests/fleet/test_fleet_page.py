"""The fleet page: ``/migctl/fleet`` on the scheduler's own web server, polling fleet.json.

An in-process fleet (a scheduler with the controller plugin, an agent over a simulated H100 with
one 7g.80gb and one over a simulated L40S with one 100% soft share) serves the page, its script
and style with a strict Content-Security-Policy, and nothing else under its name; the script's
rows, run under node on the fleet view the scheduler serves, are the fleet's slices and soft
devices as ``migctl fleet status`` prints them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

import migctl.fleet
from tests.fleet.simfleet import make_host
from tests.fleet.test_agents import fleet, until
from tests.fleet.test_soft_workers import soft_host
from tests.unit.soft_nodes import end_daemons

pytestmark = pytest.mark.timeout(120)
SCRIPT = Path(migctl.fleet.__file__).parent / "static" / "fleet.js"
ROWS = "const m = require(process.argv[1]); const v = JSON.parse(require('fs').readFileSync(0));"
ROWS += "console.log(JSON.stringify({rows: m.rowsOf(v), summary: m.summaryOf(v)}));"


async def fetch(port: int, path: str) -> Any:
    return await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}{path}")


def served(tmp_path: Path) -> dict[str, Any]:
    mig = make_host(tmp_path, "page-a", ["7g.80gb"])
    soft, machine = soft_host(tmp_path, "page-b", (100,))

    async def scenario() -> dict[str, Any]:
        async with fleet([mig, soft]) as scheduler:
            await until(lambda: len(scheduler.workers) == 2)
            port = scheduler.http_server.port  # type: ignore[attr-defined]
            pages = {p: await fetch(port, p) for p in ("/migctl/fleet", "/migctl/fleet.js")}
            pages["/migctl/fleet.css"] = await fetch(port, "/migctl/fleet.css")
            missing = []
            for path in ("/migctl/fleet.html", "/migctl/static/fleet.js", "/migctl/fleet/x"):
                with pytest.raises(HTTPClientError) as refused:
                    await fetch(port, path)
                missing.append(refused.value.code)
            for _ in range(200):  # until the view shows both workers running
                view = json.loads((await fetch(port, "/migctl/fleet.json")).body)
                workers = [
                    s["worker"] for h in view["hosts"] for g in h["gpus"] for s in g["slices"]
                ]
                workers += [d["worker_view"] for h in view["hosts"] for d in h["soft"]]
                if len(workers) == 2 and all(w and w["status"] == "running" for w in workers):
                    break
                await asyncio.sleep(0.1)
            return {"pages": pages, "missing": missing, "view": view}

    try:
        return asyncio.run(scenario())
    finally:
        from migctl.node.open import open_node

        with open_node(sim=str(machine)) as node:
            end_daemons(node)


def test_the_fleet_page_is_served_and_draws_the_fleet_view(tmp_path: Path) -> None:
    got = served(tmp_path)
    page, script = got["pages"]["/migctl/fleet"], got["pages"]["/migctl/fleet.js"]
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<script src="fleet.js"></script>' in page.body.decode()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert 'const FEED_URL = "fleet.json"' in script.body.decode()
    assert ".innerHTML" not in script.body.decode()  # data goes in as text only
    assert got["pages"]["/migctl/fleet.css"].headers["Content-Type"].startswith("text/css")
    assert got["missing"] == [404, 404, 404]

    if shutil.which("node") is None:
        pytest.skip("node is not installed: the script's rows are not checked here")
    done = subprocess.run(
        ["node", "-e", ROWS, str(SCRIPT)],
        input=json.dumps(got["view"]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    drawn = json.loads(done.stdout)
    view = got["view"]
    (mig_host,) = [h for h in view["hosts"] if h["name"] == "page-a"]
    (soft_dev,) = [d for h in view["hosts"] for d in h["soft"]]
    uuid = mig_host["gpus"][0]["slices"][0]["uuid"]
    assert drawn["rows"] == [
        ["page-a", "0", "7g.80gb@0:8", uuid, "idle", "running", ""],
        ["page-b", "0", "soft 100% 46068 MiB", soft_dev["uuid"], "isolation soft", "running", ""],
    ]
    assert drawn["summary"].startswith(f"scheduler {view['scheduler']}; controller: plugin")
