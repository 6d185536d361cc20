"""Every Python example of docs/api.md (and of the README) runs as shown, each in a fresh directory and process.

Why this exists: docs/api.md is where a Python user starts; an example that no longer runs
teaches the wrong API. Each ```python block is run by a new interpreter (one NVML library per
process: a block may open any simulated machine) in its own empty directory, with a private
``HOME`` and no ``MIGCTL_*`` variables, so it can neither read nor touch this machine's files.
A block fails the test by raising (an ``assert`` in the example included) or by running past
the timeout. Only tests import this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api.md"
README = ROOT / "README.md"
TIMEOUT_S = 120


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python fence of ``path``."""
    tokens = MarkdownIt().parse(path.read_text())
    return [
        ((token.map[0] + 1) if token.map else 0, token.content)
        for token in tokens
        if token.type == "fence" and token.info.strip() == "python"
    ]


BLOCKS = python_blocks(API)
EVERY = [(page, line, code) for page in (API, README) for line, code in python_blocks(page)]


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 6  # opening, first session, targets, leases, errors, settings, testing


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize(
    ("page", "line", "code"), EVERY, ids=[f"{page.name}:{line}" for page, line, _ in EVERY]
)
def test_each_example_runs(tmp_path: Path, page: Path, line: int, code: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIGCTL_", "XDG_"))}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{page.name}:{line} failed:\n{done.stdout}\n{done.stderr}"
