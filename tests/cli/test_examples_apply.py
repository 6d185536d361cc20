"""Each example layout applies through `migctl apply` on its simulated machine, asserts clean,
re-applies as a no-op; its export applies as a no-op too (native and mig-parted). A mig-parted
config is asserted as mig-parted asserts it: on the mixed node, the L40S that a config
leaves out (or turns MIG on for, with `devices: all`) fails it, unless it asks for MIG off."""

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
    code, out = cli(capsys, *sim, "-o", "json", "assert", "-f", path, "-c", layout, "-i", "all")
    failing = sorted(int(gpu) for gpu, lines in json.loads(out)["differences"].items() if lines)
    left_out = _left_out(file_name, layout)
    assert (code, failing) == (1 if left_out else 0, left_out), out
    if left_out:
        others = [str(gpu) for gpu in range(6) if gpu not in left_out]
        code, out = cli(capsys, *sim, "assert", "-f", path, "-c", layout, "-i", ",".join(others))
        assert code == 0, out
    code, out = cli(capsys, *sim, "-o", "json", "apply", "-f", path, "-c", layout, "-i", "all")
    assert code == 0 and json.loads(out)["noop"] is True
    for fmt in ("native", "mig-parted"):
        exported = tmp_path / f"export-{fmt}.yaml"
        code, _ = cli(capsys, *sim, "export", "--format", fmt, "--out", str(exported))
        assert code == 0
        code, out = cli(capsys, *sim, "-o", "json", "apply", "-f", str(exported), "-i", "all")
        assert code == 0 and json.loads(out)["noop"] is True, (fmt, out)
        assert cli(capsys, *sim, "assert", "-f", str(exported), "-i", "all")[0] == 0, fmt


def test_assert_reports_a_readable_diff(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ("--sim", "dgx-h100")
    path = str(EXAMPLES / "inference-h100.yaml")
    code, out = cli(capsys, *sim, "assert", "-f", path, "-c", "inference", "-i", "all")
    assert code == 1
    assert "MIG mode is off" in out and "missing GPU instance 1g.10gb" in out


# mig-parted-config.yaml on mixed-node (0-1 A100-40GB, 2-3 H100, 4 A30, 5 L40S): the GPUs each
# config leaves out, on which mig-parted's assert fails too (by hand from its entries)
LEFT_OUT = {
    "all-disabled": [],
    "all-enabled": [5],
    "all-1g.10gb": [4, 5],
    "all-balanced": [5],
    "custom": [],
}


def _left_out(file_name: str, name: str) -> list[int]:
    return LEFT_OUT[name] if file_name == "mig-parted-config.yaml" else []
