"""The parts a plain ``pip install migctl`` leaves out, and the one door to import them.

Why this exists: ``pip install migctl`` (or ``pip install -e .`` in a clone) brings the CLI,
the library and the exact planner; the daemon's web stack (FastAPI, uvicorn, httpx) is the
``server`` extra. A verb that needs a part that is not installed must say which part and the
command that installs it (exit 7, not supported here), never "internal error". Every import of
an optional part is made inside :func:`needed` (``tests/unit/test_extras.py`` checks the CLI)::

    with needed("migctl serve", extra="server"):
        from migctl.server.run import serve

Required packages imported late (scipy and numpy, for start-up time) go through the same door
with ``extra=None``: missing, they mean a broken installation, and the message says to
reinstall. A module of migctl itself that is missing is a bug and passes through unchanged.
Anyone may import this module; it imports only ``migctl.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from migctl.errors import NotSupportedError

EXTRAS: dict[str, str] = {
    "server": "the migctl daemon and its client (FastAPI, uvicorn, httpx)",
}


REINSTALL = "pip install --force-reinstall migctl (in a clone: pip install -e .)"


def install_command(extra: str) -> str:
    return f"pip install 'migctl[{extra}]' (in a clone: pip install -e '.[{extra}]')"


@contextmanager
def needed(needed_for: str, *, extra: str | None) -> Iterator[None]:
    """Turn a package missing in this block into a message: which part, how to install it."""
    if extra is not None and extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing == "migctl":
            raise
        raise _missing(needed_for, missing, extra) from exc


def _missing(needed_for: str, missing: str, extra: str | None) -> NotSupportedError:
    if extra is None:
        return NotSupportedError(
            f"{needed_for} needs {missing}, which migctl requires but is not installed: "
            "this installation of migctl is incomplete",
            hint=f"reinstall it: {REINSTALL}",
            context={"missing": missing},
        )
    return NotSupportedError(
        f"{needed_for} needs {missing}, part of migctl's '{extra}' extra "
        f"({EXTRAS[extra]}), which is not installed",
        hint=f"install it: {install_command(extra)}",
        context={"extra": extra, "missing": missing},
    )
