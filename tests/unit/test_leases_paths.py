"""Where the lease database lives by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.leases import ENV_LEASE_DB, LeaseStore, default_db_path


def test_env_var_wins(tmp_path: Path) -> None:
    env = {ENV_LEASE_DB: str(tmp_path / "x.db"), "XDG_STATE_HOME": "/state"}
    assert default_db_path(env, euid=0) == tmp_path / "x.db"


def test_root_uses_the_system_path_when_writable(tmp_path: Path) -> None:
    system = tmp_path / "var" / "lib" / "migctl" / "leases.db"  # parents missing: creatable
    assert default_db_path({}, euid=0, system_path=system) == system


def test_root_falls_back_when_the_system_dir_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where a directory should be")
    system = tmp_path / "var" / "lib" / "migctl" / "leases.db"
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    assert default_db_path(env, euid=0, system_path=system) == (
        tmp_path / "state" / "migctl" / "leases.db"
    )


def test_non_root_uses_xdg_state_home(tmp_path: Path) -> None:
    system = tmp_path / "lib" / "leases.db"
    env = {"XDG_STATE_HOME": "/srv/state", "HOME": "/home/alice"}
    assert default_db_path(env, euid=1000, system_path=system) == Path(
        "/srv/state/migctl/leases.db"
    )


@pytest.mark.parametrize("xdg", [None, "", "relative/state"])
def test_without_a_usable_xdg_state_home_uses_home(xdg: str | None) -> None:
    env = {"HOME": "/home/alice"} | ({"XDG_STATE_HOME": xdg} if xdg is not None else {})
    assert default_db_path(env, euid=1000) == Path("/home/alice/.local/state/migctl/leases.db")


def test_store_without_a_path_uses_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LEASE_DB, str(tmp_path / "from-env.db"))
    assert LeaseStore().path == tmp_path / "from-env.db"
    assert (tmp_path / "from-env.db").exists()


def test_a_simulated_machine_uses_its_own_directory(tmp_path: Path) -> None:
    machine = tmp_path / "sim" / "dgx-h100"
    system = tmp_path / "var" / "lib" / "migctl" / "leases.db"
    for euid in (0, 1000):
        found = default_db_path({}, euid=euid, system_path=system, machine_dir=machine)
        assert found == machine / "leases.db"
    explicit = {ENV_LEASE_DB: str(tmp_path / "chosen.db")}
    assert default_db_path(explicit, euid=0, machine_dir=machine) == tmp_path / "chosen.db"
