"""The API's OpenAPI schema as committed text (``docs/openapi.json``), and a check for it.

Why this module exists: clients and reviewers read the committed schema; it must never drift
from the code. ``python -m migctl.server.openapi --out docs/openapi.json`` writes it (sorted keys,
stable across runs); ``--check`` exits 1 when the file differs, and a test does the same.
Builds the app without a backend. Only tools and tests import it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from migctl.server.app import create_fastapi

DEFAULT_PATH = Path("docs/openapi.json")


def schema() -> dict[str, Any]:
    return create_fastapi(None).openapi()


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out is stale")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m migctl.server.openapi", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
