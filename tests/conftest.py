"""Shared test fixtures: an isolated simulator state directory, backends, the catalog.

Every test gets its own ``MIGCTL_SIM_DIR`` so simulated machines never leak between
tests; ``--with-gpu`` enables the read-only ``hardware`` tests on a real GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend, open_sim_control
from migctl.catalog import Catalog, load_catalog
from migctl.sim import SimControl

DATA = Path(__file__).parent / "data"
CAPTURES = DATA / "captures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-gpu", action="store_true", help="run read-only tests on a real GPU")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-gpu"):
        return
    skip = pytest.mark.skip(reason="needs a real GPU: run with --with-gpu (read-only)")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_sim_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    path = tmp_path_factory.mktemp("sim")
    monkeypatch.setenv("MIGCTL_SIM_DIR", str(path))
    monkeypatch.setenv("MIGCTL_SIM_MPS_LIFETIME_S", "600")  # a stray simulated MPS daemon ends
    daemon = ("MIGCTL_URL", "MIGCTL_TOKEN", "MIGCTL_SOCKET", "MIGCTL_LOCAL")
    for name in ("MIGCTL_SIM", "MIGCTL_READ_ONLY", "MIGCTL_CATALOG", *daemon):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def sim_dir() -> Path:
    return Path(os.environ["MIGCTL_SIM_DIR"])


@pytest.fixture
def dgx_h100(catalog: Catalog) -> Iterator[NvmlBackend]:
    backend = open_backend("dgx-h100", catalog=catalog)
    yield backend
    backend.close()


@pytest.fixture
def dgx_h100_control(dgx_h100: NvmlBackend, catalog: Catalog) -> SimControl:
    return open_sim_control("dgx-h100", catalog)
