"""Settings: every path read once from the environment, and a simulated machine's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.settings import Settings


def test_env_var_wins(tmp_path: Path) -> None:
    env = {"MIGCTL_LEASE_DB": str(tmp_path / "x.db"), "XDG_STATE_HOME": "/state"}
    assert Settings.from_env(env, euid=0).lease_db == tmp_path / "x.db"


def test_root_uses_the_system_path_when_writable(tmp_path: Path) -> None:
    system = tmp_path / "var" / "lib" / "migctl"  # parents missing: creatable
    found = Settings.from_env({}, euid=0, system_state_dir=system)
    assert found.lease_db == system / "leases.db"
    assert found.state_dir == system


def test_root_falls_back_when_the_system_dir_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where a directory should be")
    system = tmp_path / "var" / "lib" / "migctl"
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    found = Settings.from_env(env, euid=0, system_state_dir=system)
    assert found.lease_db == tmp_path / "state" / "migctl" / "leases.db"


def test_non_root_uses_xdg_state_home() -> None:
    env = {"XDG_STATE_HOME": "/srv/state", "HOME": "/home/alice"}
    found = Settings.from_env(env, euid=1000)
    assert found.lease_db == Path("/srv/state/migctl/leases.db")
    assert found.state_dir == Path("/srv/state/migctl")
    assert found.sim_dir == Path("/srv/state/migctl/sim")


@pytest.mark.parametrize("xdg", [None, "", "relative/state"])
def test_without_a_usable_xdg_state_home_uses_home(xdg: str | None) -> None:
    env = {"HOME": "/home/alice"} | ({"XDG_STATE_HOME": xdg} if xdg is not None else {})
    assert Settings.from_env(env, euid=1000).lease_db == Path(
        "/home/alice/.local/state/migctl/leases.db"
    )


def test_flags_win_over_variables(tmp_path: Path) -> None:
    env = {"MIGCTL_SIM": "dgx-h100", "MIGCTL_READ_ONLY": "yes", "MIGCTL_SIM_DIR": "/a"}
    found = Settings.from_env(env, euid=1000, overrides={"sim": "a30-node", "sim_dir": tmp_path})
    assert (found.sim, found.read_only, found.sim_dir) == ("a30-node", True, tmp_path)
    assert {"sim", "read_only", "sim_dir"} <= found.explicit


def test_a_simulated_machine_keeps_its_files_in_its_own_directory(tmp_path: Path) -> None:
    machine = tmp_path / "sim" / "dgx-h100"
    for euid in (0, 1000):
        found = Settings.from_env({}, euid=euid, system_state_dir=tmp_path / "var").for_machine(
            machine
        )
        assert (found.state_dir, found.lease_db, found.cdi_path) == (
            machine,
            machine / "leases.db",
            machine / "cdi.yaml",
        )


def test_an_explicit_lease_db_or_cdi_path_is_shared_on_purpose(tmp_path: Path) -> None:
    env = {"MIGCTL_LEASE_DB": str(tmp_path / "chosen.db"), "MIGCTL_CDI_PATH": "/etc/cdi/x.yaml"}
    found = Settings.from_env(env, euid=0).for_machine(tmp_path / "m")
    assert found.lease_db == tmp_path / "chosen.db"
    assert found.cdi_path == Path("/etc/cdi/x.yaml")
    assert found.state_dir == tmp_path / "m"  # the journal is always the machine's own


def test_real_hardware_keeps_the_settings() -> None:
    found = Settings.from_env({}, euid=1000)
    assert found.for_machine(None) is found


def test_catalog_files_split_on_the_path_separator() -> None:
    found = Settings.from_env({"MIGCTL_CATALOG": "/a.json:/b.json:"}, euid=1000)
    assert found.catalog_files == (Path("/a.json"), Path("/b.json"))


@pytest.mark.parametrize("euid", [0, 1000])
def test_a_given_state_directory_holds_the_lease_database(tmp_path: Path, euid: int) -> None:
    env = {"MIGCTL_STATE_DIR": str(tmp_path / "state")}
    found = Settings.from_env(env, euid=euid, system_state_dir=tmp_path / "var")
    assert found.lease_db == tmp_path / "state" / "leases.db"  # never the system's
    env["MIGCTL_LEASE_DB"] = str(tmp_path / "other.db")
    assert Settings.from_env(env, euid=euid).lease_db == tmp_path / "other.db"
