"""The fleet's Python examples in README.md and docs/fleet.md run as shown (integration).

The README and docs/fleet.md show the same ``MigCluster`` example; it must bring a fleet up,
run a task that needs a reshape (a 7g.80gb on a host of 4g.40gb + 3g.40gb, or host b's), print
its result, and leave no process behind.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.fleet.procs import wait_gone

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples(path: Path) -> list[str]:
    return [b for b in BLOCK.findall(path.read_text()) if "MigCluster(" in b]


def test_the_migcluster_example_of_the_readme_and_the_fleet_page_runs() -> None:
    readme, page = examples(ROOT / "README.md"), examples(ROOT / "docs" / "fleet.md")
    assert len(readme) == 1 and readme == page  # one example, the same in both
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme[0], "README.md", "exec"), {"__name__": "example"})
    assert printed.getvalue().strip() == "3"
    assert wait_gone("migctl-fleet-") == []
