"""Layout texts that attack the reader: shared by the library, CLI and daemon tests.

Why this exists: the same hostile inputs (an alias bomb, deep nesting, counts no GPU can
hold) must be refused the same way through every front end, so they are written once.
Test-only.
"""

from __future__ import annotations


def alias_bomb(levels: int, width: int) -> str:
    """``a0: [x]``, then each level a list of ``width`` aliases of the one before."""
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def deep_nesting(levels: int, prefix: str = "a: ") -> str:
    return prefix + "[" * levels + "]" * levels + "\n"


def mig_parted_count(profile: str, count: int) -> str:
    """A one-config mig-parted file (config ``x``) asking ``count`` x ``profile``."""
    return (
        "version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: true\n"
        f'      mig-devices: {{"{profile}": {count}}}\n'
    )


def native_count(profile: str, count: int) -> str:
    """A one-layout native file (layout ``x``) asking ``count`` x ``profile`` on every GPU."""
    return (
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  x:\n    gpus:\n      - select: all\n"
        f"        mig: true\n        instances: [{{profile: {profile}, count: {count}}}]\n"
    )
