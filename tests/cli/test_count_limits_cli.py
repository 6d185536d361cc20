"""The CLI refuses counts no GPU can hold at once, with a documented exit code, and changes nothing.

Why this exists: ``migctl plan --model h100 --split 1000000000`` hung, ``plan --model h100
--gpus 100000000`` grew to gigabytes, and ``plan``/``apply -f`` of a file asking a billion
instances ended in MemoryError (exit 70). Each is now a clear refusal: exit 5 for more than
the GPUs hold, 11 for a bad file or value, 2 for an option out of range. The pytest
timeouts bound "does not build a billion of anything"; they are not timing assertions.
Test-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.cli.main import run
from tests.cli.conftest import migctl
from tests.unit.layout_attacks import mig_parted_count, native_count

BILLION = 1_000_000_000


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    result = migctl(capsys, *argv)
    assert "Traceback" not in result.out + result.err
    return result.code, result.out + result.err


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--split", str(BILLION)], 5, "at most 7 GPU instances"),
        (["--demand", "100000000x1g.10gb"], 5, "hold at most 7"),
        (["--demand", f"{BILLION}x1g.10gb"], 11, "larger than any machine"),
        (["--gpus", "100000000", "--demand", "1x1g.10gb"], 2, "1<=x<=1024"),
        (["--gpus", "0", "--split", "2"], 2, "1<=x<=1024"),
    ],
)
def test_offline_plans_refuse_counts_beyond_the_gpus(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, words: str
) -> None:
    got, text = cli(capsys, "plan", "--model", "h100", *argv)
    assert got == code, text
    assert words in text


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [mig_parted_count("1g.10gb", BILLION), native_count("1g.10gb", BILLION)],
    ids=["mig-parted", "native"],
)
@pytest.mark.parametrize("verb", ["plan", "apply", "assert"])
def test_layout_files_asking_a_billion_exit_11_and_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sim_dir: Path, verb: str, text: str
) -> None:
    layout = tmp_path / "big.yaml"
    layout.write_text(text)
    assert run(["--sim", "h100-single", "mode", "show"]) == 0
    before = {p: p.read_bytes() for p in sim_dir.glob("*.json")}
    got, out = cli(capsys, "--sim", "h100-single", verb, "-f", str(layout))
    assert got == 11, out
    assert "1000000000 x 1g.10gb asked" in out and "at most 7 per GPU" in out
    assert {p: p.read_bytes() for p in sim_dir.glob("*.json")} == before


@pytest.mark.timeout(20)
def test_split_verb_refuses_a_billion_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], sim_dir: Path
) -> None:
    assert run(["--sim", "h100-single", "mode", "show"]) == 0
    before = {p: p.read_bytes() for p in sim_dir.glob("*.json")}
    got, out = cli(capsys, "--sim", "h100-single", "split", str(BILLION), "-i", "0")
    assert got == 5, out
    assert {p: p.read_bytes() for p in sim_dir.glob("*.json")} == before
