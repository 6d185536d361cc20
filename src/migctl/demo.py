"""``make demo``: the main job on a simulated DGX H100, as a user would type it.

Why this exists: a newcomer on a machine without a GPU should see, in one command, what
migctl does: show the machine, enable MIG, create a mixed set of instances (in an order
that makes ``nvidia-smi`` fail), list the MIG devices with their UUIDs, show who uses
what, refuse to destroy a busy instance, and clean up. Each step runs the real CLI in a
subprocess against a fresh simulated machine in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from migctl.sim.processes import process_start_time

MACHINE = "dgx-h100"


def _run(args: list[str], env: dict[str, str], *, check: bool = True, show: bool = True) -> str:
    command = ["migctl", "--sim", MACHINE, *args]
    if show:
        print(f"\n$ {shlex.join(command)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "migctl", "--sim", MACHINE, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if show:
        print(result.stdout, end="", flush=True)
        print(result.stderr, end="", file=sys.stderr, flush=True)
    if check and result.returncode != 0:
        raise SystemExit(
            f"demo step failed with exit code {result.returncode}: {shlex.join(command)}"
        )
    if show and result.returncode != 0:
        print(f"(exit code {result.returncode}, as expected)", flush=True)
    return result.stdout


def _say(text: str) -> None:
    print(f"\n# {text}", flush=True)


def _first_device(env: dict[str, str], gpu: int) -> dict[str, Any]:
    listing = json.loads(_run(["-o", "json", "list", "-i", str(gpu)], env, show=False))
    devices: list[dict[str, Any]] = listing["gpus"][0]["mig_devices"]
    return devices[0]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="migctl-demo-") as state_dir:
        env = {**os.environ, "MIGCTL_SIM_DIR": state_dir, "COLUMNS": "150"}
        env.pop("MIGCTL_SIM", None)
        _say(f"A simulated {MACHINE}: 8 x H100 80GB, MIG off. No GPU is needed.")
        _run(["list", "-i", "0,1,2"], env)
        _say("What can an H100 be split into? (offline, from the catalog)")
        _run(["catalog", "h100"], env)
        _say("Enable MIG on GPUs 0 and 1.")
        _run(["mode", "enable", "-i", "0,1"], env)
        _say(
            "19,19,14,9 fails with `nvidia-smi mig -cgi` (creation order); migctl places it whole."
        )
        _run(["gi", "create", "19,19,14,9", "-C", "-i", "0"], env)
        _run(["gi", "create", "3g.40gb,1g.20gb,1g.20gb", "-C", "-i", "1"], env)
        _say("The MIG devices and their UUIDs (what CUDA_VISIBLE_DEVICES takes).")
        _run(["list", "-i", "0,1"], env)
        device = _first_device(env, 0)
        _say(f"A job starts on {device['uuid']} ({device['ci_profile']}).")
        out = _run(
            ["-o", "json", "sim", "hold", "--device", device["uuid"], "--memory", "6144"], env
        )
        holder = int(json.loads(out)["pid"])
        _run(["status", "-i", "0,1"], env)
        _say("Destroying a busy instance is refused, and nothing changes.")
        _run(["gi", "destroy", "-i", "0", "--id", str(device["gi_id"])], env, check=False)
        _say("The job ends; clean up.")
        os.kill(holder, signal.SIGTERM)
        _wait_gone(holder)
        _run(["gi", "destroy", "--all", "-i", "0,1"], env)
        _run(["mode", "disable", "-i", "0,1"], env)
        _run(["status", "-i", "0"], env)
        print("\nDemo done. Try it yourself: export MIGCTL_SIM=dgx-h100; migctl --help", flush=True)


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until ``pid`` has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_start_time(pid) is not None:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
