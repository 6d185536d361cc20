"""The layout verbs judge mig-parted configs as mig-parted does, on nodes mig-parted set up.

Why this exists: on a node whose compute instances mig-parted packed into shared GPU
instances, ``assert`` failed, ``apply`` would have destroyed a CI and ``export --format
mig-parted`` exited 7; ``assert`` of a config that selects no GPU passed silently (exit 0,
no output); ``-i`` did not narrow the GPUs a file is checked against; and ``export`` of a
machine without MIG failed. "A node mig-parted set up" is made by the oracle, a port of
mig-parted's own SetMigConfig driving the simulator (``tests/unit/migparted_oracle.py``).
Test-only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from migctl.backends.select import open_backend
from migctl.catalog import Catalog
from migctl.cli.main import run
from migctl.layout import load_layout
from tests.cli.conftest import migctl
from tests.unit import migparted_oracle as oracle

DATA = Path(__file__).parents[1] / "data" / "layouts"
CI_EXAMPLES = DATA / "mig-parted-ci-counts.yaml"
DEFAULT = DATA / "nvidia-gpu-operator-default.yaml"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    result = migctl(capsys, *argv)
    assert "Traceback" not in result.out + result.err
    return result.code, result.out + result.err


def state(sim_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(sim_dir.glob("*.json"))}


def set_up_by_mig_parted(
    catalog: Catalog, machine: str, configs: dict[int, dict[str, int]]
) -> None:
    backend = open_backend(machine, catalog=catalog)
    try:
        for gpu, counts in configs.items():
            assert backend.set_mig_mode(gpu, True).done
            assert oracle.set_mig_config(backend, gpu, counts), (gpu, counts)
    finally:
        backend.close()


def example_counts() -> dict[int, dict[str, int]]:
    layout = load_layout(CI_EXAMPLES)
    return {
        gpu: {inst.profile: inst.count for inst in rule.instances}
        for gpu, rule in enumerate(layout.rules)
    }


def canonical(counts: dict[str, int]) -> dict[str, int]:
    found: dict[str, int] = {}
    for key, count in counts.items():
        found[oracle.canonical(key)] = found.get(oracle.canonical(key), 0) + count
    return found


def test_on_a_node_mig_parted_set_up_assert_passes_apply_changes_nothing_export_agrees(
    capsys: pytest.CaptureFixture[str], catalog: Catalog, sim_dir: Path, tmp_path: Path
) -> None:
    set_up_by_mig_parted(catalog, "dgx-a100", example_counts())
    before = state(sim_dir)
    code, out = cli(capsys, "--sim", "dgx-a100", "assert", "-f", str(CI_EXAMPLES))
    assert code == 0, out
    assert out.count(": matches") == 8
    code, out = cli(capsys, "--sim", "dgx-a100", "apply", "-f", str(CI_EXAMPLES))
    assert code == 0, out
    assert "already matches" in out
    assert state(sim_dir) == before  # no CI destroyed, nothing recreated
    code, text = cli(capsys, "--sim", "dgx-a100", "export", "--format", "mig-parted")
    assert code == 0, text
    exported = yaml.safe_load(text)["mig-configs"]["exported"]
    by_gpu = {gpu: entry["mig-devices"] for entry in exported for gpu in entry["devices"]}
    assert by_gpu == {gpu: canonical(counts) for gpu, counts in example_counts().items()}
    again = tmp_path / "export.yaml"
    again.write_text(text)
    code, out = cli(capsys, "--sim", "dgx-a100", "assert", "-f", str(again))
    assert code == 0, out


def test_counts_that_match_in_other_gpu_instances_are_left_alone_as_mig_parted_leaves_them(
    capsys: pytest.CaptureFixture[str], sim_dir: Path, tmp_path: Path
) -> None:
    """Two 2g.10gb GIs with one 1c CI each: mig-parted's counts equal "1c.2g.10gb": 2, so its
    apply skips the GPU and its assert passes, though it would pack the two CIs into one GI."""
    machine = tmp_path / "a100.yaml"
    machine.write_text("name: one-a100\ngpus:\n  - model: a100-sxm4-40gb\n")
    sim = ["--sim", str(machine)]
    assert run([*sim, "mode", "enable", "-i", "0"]) == 0
    layout = tmp_path / "two.yaml"
    layout.write_text(
        "version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices: {"1c.2g.10gb": 2}\n'
    )
    native = tmp_path / "split.yaml"
    native.write_text(
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  x:\n    gpus:\n      - select: all\n"
        "        mig: true\n        instances:\n"
        "          - {profile: 2g.10gb, count: 2, compute: [1c.2g.10gb]}\n"
    )
    code, out = cli(capsys, *sim, "apply", "-f", str(native))
    assert code == 0, out
    before = state(sim_dir)
    code, out = cli(capsys, *sim, "assert", "-f", str(layout))
    assert code == 0, out
    code, out = cli(capsys, *sim, "apply", "-f", str(layout))
    assert code == 0 and "already matches" in out, out
    assert state(sim_dir) == before


@pytest.mark.parametrize(
    ("machine", "config", "gpus"),
    [
        ("h100-single", "all-1g.35gb", [0]),  # an H200 config: no entry selects the H100
        ("l40s-node", "all-1g.10gb", [0, 1, 2, 3]),  # no MIG: no device-filter matches
        ("l40s-node", "all-enabled", [0, 1, 2, 3]),  # devices: all turns MIG on: skipped
        ("mixed-node", "all-balanced", [5]),  # the L40S alone is left out
    ],
)
def test_assert_of_a_config_that_leaves_gpus_out_fails_naming_them(
    capsys: pytest.CaptureFixture[str], machine: str, config: str, gpus: list[int]
) -> None:
    if machine == "mixed-node":
        assert run(["--sim", machine, "apply", "-f", str(DEFAULT), "-c", config]) == 0
    code, out = cli(
        capsys, "--sim", machine, "-o", "json", "assert", "-f", str(DEFAULT), "-c", config
    )
    assert code == 1, out
    answer = json.loads(out)
    assert answer["matches"] is False
    failing = sorted(int(gpu) for gpu, lines in answer["differences"].items() if lines)
    assert failing == gpus
    code, text = cli(capsys, "--sim", machine, "assert", "-f", str(DEFAULT), "-c", config)
    assert code == 1
    for gpu in gpus:
        assert f"GPU {gpu}: " in text


def test_assert_of_mig_off_passes_on_gpus_without_mig(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(
        capsys, "--sim", "l40s-node", "assert", "-f", str(DEFAULT), "-c", "all-disabled"
    )
    assert code == 0, out
    assert out.count(": matches") == 4


def test_a_native_layout_selecting_none_of_the_gpus_checked_fails_assert(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    layout = tmp_path / "other.yaml"
    layout.write_text(
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  x:\n    gpus:\n"
        "      - select: {index: 1}\n        mig: false\n"
    )
    code, out = cli(capsys, "--sim", "dgx-h100", "assert", "-f", str(layout), "-i", "0")
    assert code == 1, out
    assert "GPU 0: " in out and "selects none of the GPUs checked" in out


@pytest.mark.parametrize(
    "text",
    [
        "version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: false\n"
        "    - devices: [99]\n      mig-enabled: false\n",
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  x:\n    gpus:\n"
        "      - select: all\n        mig: false\n"
        "      - select: {index: 99}\n        optional: true\n        mig: false\n",
    ],
    ids=["mig-parted", "native optional"],
)
def test_a_gpu_index_the_machine_lacks_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    layout = tmp_path / "ninety-nine.yaml"
    layout.write_text(text)
    for verb in ("assert", "plan", "apply"):
        code, out = cli(capsys, "--sim", "dgx-h100", verb, "-f", str(layout))
        assert code == 0, out
        assert "GPU 99, which this machine does not have" in out, (verb, out)


def test_dash_i_narrows_the_gpus_a_file_is_checked_against(
    capsys: pytest.CaptureFixture[str], sim_dir: Path
) -> None:
    """``all-1g.5gb`` has no device-filter: on the H100s (GPUs 2-3) its 1g.5gb does not
    exist, but -i 0,1 asks only about the A100s."""
    base = ["--sim", "mixed-node"]
    assert run([*base, "mode", "enable", "-i", "0,1"]) == 0
    for verb in ("plan", "apply", "assert"):
        code, out = cli(capsys, *base, verb, "-f", str(DEFAULT), "-c", "all-1g.5gb", "-i", "0,1")
        assert code == 0, (verb, out)
    code, out = cli(capsys, *base, "assert", "-f", str(DEFAULT), "-c", "all-1g.5gb")
    assert code == 11 and "GPU 2" in out  # the whole machine: GPU 2 cannot hold it


@pytest.mark.parametrize("fmt", ["native", "mig-parted"])
def test_export_of_gpus_without_mig_writes_mig_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    code, text = cli(capsys, "--sim", "l40s-node", "export", "--format", fmt)
    assert code == 0, text
    document = yaml.safe_load(text)
    if fmt == "mig-parted":
        entries = document["mig-configs"]["exported"]
        assert [(e["devices"], e["mig-enabled"], e["device-filter"]) for e in entries] == [
            ([0, 1, 2, 3], False, ["0x26B910DE"])
        ]
    else:
        assert document["layouts"]["exported"]["gpus"] == [
            {"select": {"index": [0, 1, 2, 3]}, "mig": False}
        ]
    exported = tmp_path / "export.yaml"
    exported.write_text(text)
    code, out = cli(capsys, "--sim", "l40s-node", "assert", "-f", str(exported))
    assert code == 0, out
