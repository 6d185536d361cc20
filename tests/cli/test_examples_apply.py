"""Each example layout applies through `migctl apply` on its simulated machine, asserts clean,
re-applies as a no-op; its export applies as a no-op too (native and mig-parted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migctl.cli.main import run
from migctl.layout import load_layouts
from tests.unit.test_layout_examples import MACHINE_OF

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = [
    (name, layout) for name in sorted(MACHINE_OF) for layout in load_layouts(EXAMPLES / name).names
]


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, out


@pytest.mark.parametrize(("file_name", "layout"), CASES, ids=[f"{n}:{c}" for n, c in CASES])
def test_example_applies_asserts_and_exports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, file_name: str, layout: str
) -> None:
    sim = ("--sim", MACHINE_OF[file_name])
    path = str(EXAMPLES / file_name)
    code, out = cli(capsys, *sim, "-o", "json", "apply", "-f", path, "-c", layout, "-i", "all")
    assert code == 0, out
    assert cli(capsys, *sim, "assert", "-f", path, "-c", layout, "-i", "all")[0] == 0
    code, out = cli(capsys, *sim, "-o", "json", "apply", "-f", path, "-c", layout, "-i", "all")
    assert code == 0 and json.loads(out)["noop"] is True
    for fmt in ("native", "mig-parted"):
        exported = tmp_path / f"export-{fmt}.yaml"
        code, _ = cli(capsys, *sim, "export", "--format", fmt, "--out", str(exported))
        if code == 7 and fmt == "mig-parted":  # several CIs in one GI: mig-parted cannot say it
            assert _has_split_gi(capsys, sim)
            continue
        assert code == 0
        code, out = cli(capsys, *sim, "-o", "json", "apply", "-f", str(exported), "-i", "all")
        assert code == 0 and json.loads(out)["noop"] is True, (fmt, out)


def test_assert_reports_a_readable_diff(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ("--sim", "dgx-h100")
    path = str(EXAMPLES / "inference-h100.yaml")
    code, out = cli(capsys, *sim, "assert", "-f", path, "-c", "inference", "-i", "all")
    assert code == 1
    assert "MIG mode is off" in out and "missing GPU instance 1g.10gb" in out


def _has_split_gi(capsys: pytest.CaptureFixture[str], sim: tuple[str, ...]) -> bool:
    _, out = cli(capsys, *sim, "-o", "json", "ci", "list", "-i", "all")
    per_gi: dict[tuple[int, int], int] = {}
    for ci in json.loads(out)["compute_instances"]:
        key = (ci["gpu"], ci["gi_id"])
        per_gi[key] = per_gi.get(key, 0) + 1
    return any(count > 1 for count in per_gi.values())
