"""Small helpers the benchmark reports share: markdown tables, the machine, the command.

Why this exists: every benchmark writes a committed markdown file that says what ran,
where and how to rerun it; the wording and table format should not drift between them.
Imported by ``bench.*`` report writers only.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """``AMD EPYC, 2 CPUs, Linux x86_64, Python 3.11.7, 2026-11-22``."""
    return (
        f"{_cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )


def command(module: str, argv: Sequence[str] | None) -> str:
    """The command line that reproduces a run (as typed from the project root)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return " ".join(["PYTHONPATH=src python -m", module, *args])
