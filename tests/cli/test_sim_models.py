"""Every catalog model can be put in a simulated machine, and the CLI says how far to trust it.

Why this exists: a machine file naming a model the reference describes only in part used to
exit 7 ("the catalog does not know 1g.20gb: memory, SM count"); the simulator now derives
what is missing, and ``status``, ``sim show`` and ``sim machines`` show the trust level and
which values are derived.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migctl.catalog import load_catalog
from migctl.cli.main import run
from migctl.sim.machine import PARTIAL_NOTE


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in out + err
    return code, out, err


def machine_file(tmp_path: Path, model: str, count: int = 2) -> str:
    path = tmp_path / f"{model}.yaml"
    path.write_text(f"name: lab\ngpus:\n  - model: {model}\n    count: {count}\n")
    return str(path)


def test_a_partly_known_model_is_simulated_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sim = ("--sim", machine_file(tmp_path, "a100-sxm4-80gb"))
    code, out, err = cli(capsys, *sim, "-o", "json", "list")
    assert code == 0, err
    assert [g["name"] for g in json.loads(out)["gpus"]] == ["NVIDIA A100-SXM4-80GB"] * 2
    assert cli(capsys, *sim, "mode", "enable", "-i", "0")[0] == 0
    code, _, err = cli(capsys, *sim, "gi", "create", "1g.20gb,1g.20gb,3g.40gb", "-i", "0", "-C")
    assert code == 0, err
    code, out, _ = cli(capsys, *sim, "-o", "json", "status")
    backend = json.loads(out)["description"]
    assert f"GPUs 0-1 (a100-sxm4-80gb, trust partial) {PARTIAL_NOTE}" in backend
    code, out, _ = cli(capsys, *sim, "status")
    assert PARTIAL_NOTE in " ".join(out.split())
    code, out, _ = cli(capsys, *sim, "-o", "json", "gi", "list", "-i", "0")
    memory = {g["profile"]: g["memory_mib"] for g in json.loads(out)["gpu_instances"]}
    assert memory == {"1g.20gb": 19968, "3g.40gb": 40192}  # 1g.20gb derived: as 2g.20gb


def test_sim_show_lists_trust_and_derived_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sim = ("--sim", machine_file(tmp_path, "a100-sxm4-80gb"))
    code, out, _ = cli(capsys, *sim, "-o", "json", "sim", "show")
    assert code == 0
    shown = json.loads(out)
    assert {g["trust"] for g in shown["gpus"]} == {"partial"}
    derived = {(d["profile"], d["field"]): d for d in shown["derived"]["a100-sxm4-80gb"]}
    assert derived[("1g.20gb", "memory_mib")]["value"] == "19968"
    assert "2g.20gb" in derived[("1g.20gb", "memory_mib")]["reason"]
    assert ("1g.10gb", "memory_mib") not in derived  # published: never derived
    assert any(PARTIAL_NOTE in line for line in shown["notes"])
    code, out, _ = cli(capsys, *sim, "sim", "show")
    assert "a100-sxm4-80gb: derived values" in out and "partial" in out
    code, out, _ = cli(capsys, "catalog", "a100-sxm4-80gb")
    assert f"the simulator derives the {len(derived)} value(s) unknown here" in " ".join(
        out.split()
    )


def test_a_verified_machine_carries_no_partial_note(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--sim", "h100-single", "-o", "json", "status")
    assert code == 0 and PARTIAL_NOTE not in json.loads(out)["description"]
    code, out, _ = cli(capsys, "--sim", "h100-single", "-o", "json", "sim", "show")
    assert json.loads(out)["derived"] == {"h100-80gb-hbm3": []}
    assert json.loads(out)["gpus"][0]["trust"] == "verified"


def test_sim_machines_shows_each_machine_s_trust(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "-o", "json", "sim", "machines")
    assert code == 0
    machines = {m["name"]: m for m in json.loads(out)["machines"]}
    assert machines["dgx-h100"]["models"] == [{"key": "h100-80gb-hbm3", "trust": "verified"}]
    assert {m["trust"] for m in machines["mixed-node"]["models"]} == {
        "verified",
        "transcript",
        "documented",
    }
    code, out, _ = cli(capsys, "sim", "machines")
    assert "Trust" in out and "transcript" in out


@pytest.mark.parametrize("model", [m.key for m in load_catalog().mig_models])
def test_every_catalog_model_reads_captures_and_matches_the_catalog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model: str
) -> None:
    """Reading every simulated model through the CLI works (B300's published compute
    capability "10.3 (third-party)" once crashed the simulator with exit 70), and `catalog
    check` finds no difference: no published value is replaced by a derived one (RTX PRO
    5000/4500 once differed in their unknown memory slices, which the check took as 0)."""
    sim = ("--sim", machine_file(tmp_path, model, 1))
    code, out, err = cli(capsys, *sim, "-o", "json", "catalog", "capture")
    assert code == 0, err
    captured = json.loads(out)["models"][0]
    assert len(captured["gi_profiles"]) == len(load_catalog().get(model).gi_profiles)
    assert all(p["memory_mib"] and p["sm_count"] for p in captured["gi_profiles"])
    if model == "b300-288gb":
        assert captured["compute_capability"] == "10.3"
    code, out, err = cli(capsys, *sim, "-o", "json", "profiles")
    assert code == 0, err
    # wherever the catalog publishes a value, the simulated GPU reports exactly that value
    code, out, err = cli(capsys, *sim, "-o", "json", "catalog", "check")
    assert code == 0, out
    assert json.loads(out)["gpus"][0]["differences"] == []


def test_a_model_file_with_an_odd_compute_capability_does_not_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A catalog file is input from outside: a compute capability that is not MAJOR.MINOR
    reads as unknown (NVML's NOT_SUPPORTED) instead of an internal error (exit 70)."""
    from migctl.catalog import model_to_dict

    document = model_to_dict(load_catalog().get("h100-80gb-hbm3"))
    document.update(key="odd-gpu", aliases=[], compute_capability="9.0 (from a forum)")
    model_file = tmp_path / "odd.json"
    model_file.write_text(json.dumps({"models": [document]}))
    sim = ("--sim", machine_file(tmp_path, str(model_file), 1))
    code, out, err = cli(capsys, *sim, "-o", "json", "catalog", "capture")
    assert code == 0, err
    assert json.loads(out)["models"][0]["compute_capability"] is None
