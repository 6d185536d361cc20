"""docs/soft-partitions.md stays true: its Python example runs against the simulated MPS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.mps_programs import BASE_ENV, short_state_dir

DOC = Path(__file__).parents[2] / "docs" / "soft-partitions.md"


@pytest.mark.timeout(120)
def test_the_python_example_runs() -> None:
    match = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    with short_state_dir() as state_dir:
        code = match.group(1).replace('"/tmp/migctl-demo"', repr(str(state_dir)))
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=BASE_ENV,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "25% of GPU 0 (H100 80GB HBM3), ~32 of 132 SMs, 20389 MiB pinned" in result.stdout
    assert "attached to MPS server" in result.stdout


@pytest.mark.timeout(120)
def test_the_api_example_of_a_soft_lease_runs() -> None:
    api = Path(__file__).parents[2] / "docs" / "api.md"
    blocks = re.findall(r"```python\n(.*?)```", api.read_text(), re.S)
    (code,) = [block for block in blocks if "share=" in block]
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=BASE_ENV,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    uuid, percent, limit = result.stdout.split()
    assert uuid.startswith("SOFT-") and (percent, limit) == ("25", "0=8192M")
