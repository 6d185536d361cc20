"""Every malformed layout file given to `migctl apply` exits 11 with a precise message, and the
simulated machine is exactly as before (state file byte for byte)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.cli.main import run
from tests.unit.test_layout_errors import CASES, Case


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))


def machine_for(case: Case, tmp_path: Path) -> str:
    keys = case.machine or ("h100-80gb-hbm3",)
    spec = tmp_path / "machine.yaml"
    spec.write_text("name: bad-layouts\ngpus:\n" + "".join(f"  - model: {k}\n" for k in keys))
    return str(spec)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_layout_changes_nothing(
    case: Case, tmp_path: Path, sim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = machine_for(case, tmp_path)
    layout = tmp_path / "layout.yaml"
    layout.write_text(case.text)
    assert run(["--sim", machine, "mode", "show"]) == 0  # the machine exists before the apply
    states = sorted(sim_dir.glob("*.json"))
    before = [p.read_bytes() for p in states]
    capsys.readouterr()
    args = ["--sim", machine, "apply", "-f", str(layout), "-i", "all"]
    if case.layout:
        args += ["-c", case.layout]
    code = run(args)
    _, err = capsys.readouterr()
    assert code == 11, err
    assert "Traceback" not in err and "hint" in err
    if case.key_path:
        assert case.key_path in err
    assert [p.read_bytes() for p in states] == before
