"""Every Python example of docs/api.md runs, as a reader would paste it, on the simulator.

Why this exists: docs/api.md promises that its examples run; each ```python block is run in a
fresh namespace (its own imports) in this process, top to bottom, and must finish without an
exception. The page's first block names the entry points on a real server (real NVML, the
system daemon's socket) and is shown as ```text, not run. Test-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from migctl.backends.nvml import guard
from tests.docs.blocks import ROOT

API = ROOT / "docs" / "api.md"


def python_blocks(path: Path) -> list[tuple[int, str]]:
    tokens = MarkdownIt().parse(path.read_text())
    return [
        (token.map[0] + 1 if token.map else 0, token.content)
        for token in tokens
        if token.type == "fence" and token.info.strip() == "python"
    ]


BLOCKS = python_blocks(API)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("line", "source"), BLOCKS, ids=[f"api.md:{line}" for line, _ in BLOCKS])
def test_an_example_runs(line: int, source: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(source, f"docs/api.md:{line}", "exec"), {"__name__": "example"})
    assert guard.open_library() is None  # every node the example opened was closed
    assert "Traceback" not in capsys.readouterr().err
