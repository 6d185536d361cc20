"""Missing parts of an installation: a message naming the part and its install command.

A plain ``pip install migctl`` lacks the ``server`` extra; before, ``migctl serve`` then died
with exit 70 ("internal error ... please report this bug"). The packages are made missing
here by putting ``None`` in ``sys.modules`` (what Python does for a package that is not
installed: ``ModuleNotFoundError`` with its name).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import migctl
from migctl.cli.main import run
from migctl.errors import NotSupportedError
from migctl.extras import needed

CLI = Path(migctl.__file__).parent / "cli"


NEEDS_SERVER_EXTRA = ("migctl.server", "migctl.client.http", "migctl.node.remote")


@pytest.fixture(autouse=True)
def _no_half_imported_server() -> Iterator[None]:
    """After each test: drop the daemon modules it imported for the first time, and point each
    package's attribute back at the module ``sys.modules`` holds. monkeypatch puts the forgotten
    modules back in ``sys.modules``, but ``migctl.server`` (the attribute of ``migctl``) would
    stay the half-imported package of the test, without ``run``."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(NEEDS_SERVER_EXTRA):
            del sys.modules[name]
    for name in [n for n in sys.modules if n.startswith("migctl.")]:
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    for package in ("migctl", "migctl.client", "migctl.node"):
        for child in ("server", "http", "remote"):
            name = f"{package}.{child}"
            loaded = sys.modules.get(package)
            if loaded is not None and name not in sys.modules and child in vars(loaded):
                delattr(loaded, child)  # forgotten: imported afresh when asked


def _forget_server_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the modules that import the server extra (the daemon, and its client)."""
    for name in [m for m in sys.modules if m.startswith(NEEDS_SERVER_EXTRA)]:
        monkeypatch.delitem(sys.modules, name)


def _missing(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """As if ``packages`` were not installed, even when an earlier test imported them."""
    _forget_server_modules(monkeypatch)
    for package in packages:
        for name in [m for m in sys.modules if m.startswith(f"{package}.")]:
            monkeypatch.delitem(sys.modules, name)  # `from pkg.sub import x` looks here first
        monkeypatch.setitem(sys.modules, package, None)


def test_serve_without_uvicorn_names_the_extra_and_its_install_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    _missing(monkeypatch, "uvicorn")
    capsys.readouterr()
    code = run(["--sim", "h100-single", "serve", "--socket", str(tmp_path / "d.sock")])
    err = capsys.readouterr().err
    assert code == 7, err
    assert "migctl serve needs uvicorn" in err
    assert "pip install 'migctl[server]'" in err and "pip install -e '.[server]'" in err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "d.sock").exists()


def test_a_daemon_url_without_httpx_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_URL", "http://127.0.0.1:9")
    _missing(monkeypatch, "httpx")
    capsys.readouterr()
    code = run(["list"])
    err = capsys.readouterr().err
    assert code == 7, err
    assert "httpx" in err and "pip install 'migctl[server]'" in err


def test_token_commands_without_the_server_extra_say_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path))
    _missing(monkeypatch, "uvicorn", "starlette", "fastapi", "httpx")
    capsys.readouterr()
    code = run(["token", "create", "--name", "ci", "--via", "direct"])
    err = capsys.readouterr().err
    assert code == 7, err
    assert "pip install 'migctl[server]'" in err


def test_a_missing_migctl_module_is_a_bug_not_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError), needed("a test", extra="server"):
        import migctl.no_such_module  # type: ignore[import-not-found]  # noqa: F401


def test_the_exact_planner_has_no_silent_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """scipy is a dependency: without it packing fails loudly instead of going greedy."""
    from migctl.catalog import load_catalog
    from migctl.planner.packing import Demand, pack

    h100 = load_catalog().get_mig("h100")
    _missing(monkeypatch, "scipy")
    with pytest.raises(NotSupportedError) as caught:
        pack([h100], [Demand(2, ("1g.10gb",))])
    assert "scipy" in caught.value.message and "reinstall" in (caught.value.hint or "")
    heuristic = pack([h100], [Demand(2, ("1g.10gb",))], method="heuristic")  # asked for by name
    assert heuristic.method == "greedy" and not any(heuristic.unmet)


def _inside_needed(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "id", None) == "needed"
            for item in node.items
        ):
            return True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_the_cli_imports_the_server_package_only_through_needed(path: Path) -> None:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    outside = [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[:2] == ["migctl", "server"]
        and not _inside_needed(node, parents)
    ]
    assert not outside, "import these inside `with needed(..., extra='server')`"
