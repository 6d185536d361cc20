"""Device files of MIG devices from the driver's procfs (a fake tree in the real format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.backends.select import open_backend
from migctl.tenancy.devnodes import (
    DeviceNodeReader,
    node_reader_for,
    proc_dir_name,
)

# The layout of /proc/driver/nvidia-caps/mig-minors as read on an H100 (driver 580.159.04):
# "config 1", "monitor 2", then for every GPU minor: gi0..gi14, each "access" + ci0..ci7.
GIS_PER_GPU, CIS_PER_GI = 15, 8


def mig_minor_lines(gpu_minors: int) -> list[str]:
    lines, number = ["config 1", "monitor 2"], 3
    for gpu in range(gpu_minors):
        for gi in range(GIS_PER_GPU):
            lines.append(f"gpu{gpu}/gi{gi}/access {number}")
            number += 1
            for ci in range(CIS_PER_GI):
                lines.append(f"gpu{gpu}/gi{gi}/ci{ci}/access {number}")
                number += 1
    return lines


def fake_proc(root: Path, minors_by_bus_id: dict[str, int]) -> dict[str, int]:
    """Write a fake ``<root>/proc/driver`` tree; returns the mig-minors table it wrote."""
    for bus_id, minor in minors_by_bus_id.items():
        info = root / "proc/driver/nvidia/gpus" / bus_id / "information"
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(
            "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 41\n"
            f"Bus Location: \t {bus_id}\nDevice Minor: \t {minor}\nGPU Excluded:\t No\n"
        )
    lines = mig_minor_lines(max(minors_by_bus_id.values(), default=0) + 1)
    caps = root / "proc/driver/nvidia-caps/mig-minors"
    caps.parent.mkdir(parents=True, exist_ok=True)
    caps.write_text("\n".join(lines) + "\n")
    return {name: int(n) for name, n in (line.rsplit(" ", 1) for line in lines)}


def test_proc_dir_name_converts_nvml_bus_ids() -> None:
    assert proc_dir_name("00000000:18:00.0") == "0000:18:00.0"
    assert proc_dir_name("00000001:AB:00.0") == "0001:ab:00.0"


def test_reader_finds_minor_and_capabilities(tmp_path: Path) -> None:
    table = fake_proc(tmp_path, {"0000:18:00.0": 2, "0000:2a:00.0": 0})
    reader = DeviceNodeReader(tmp_path)
    assert reader.gpu_minor("00000000:18:00.0") == 2
    assert reader.gpu_minor("00000000:2A:00.0") == 0
    assert reader.gpu_minor("00000000:99:00.0") is None
    nodes = reader.nodes("00000000:18:00.0", gi_id=9, ci_id=1)
    assert nodes.complete
    assert nodes.paths == (
        "/dev/nvidia2",
        f"/dev/nvidia-caps/nvidia-cap{table['gpu2/gi9/access']}",
        f"/dev/nvidia-caps/nvidia-cap{table['gpu2/gi9/ci1/access']}",
    )


def test_unknown_parts_stay_unknown(tmp_path: Path) -> None:
    fake_proc(tmp_path, {"0000:18:00.0": 0})
    reader = DeviceNodeReader(tmp_path)
    beyond = reader.nodes("00000000:18:00.0", gi_id=99, ci_id=0)  # no such GI in the table
    assert beyond.gpu_node == "/dev/nvidia0" and beyond.gi_cap is None and not beyond.complete
    nothing = DeviceNodeReader(None).nodes("00000000:18:00.0", 1, 0)
    assert nothing.paths == () and not nothing.complete
    missing_root = DeviceNodeReader(tmp_path / "absent").nodes("00000000:18:00.0", 1, 0)
    assert missing_root.paths == ()


def test_the_simulator_knows_no_device_files_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = open_backend("h100-single")
    try:
        assert node_reader_for(backend).root is None  # never the host's real /proc
        assert node_reader_for(backend, tmp_path).root == tmp_path  # MIGCTL_PROC_ROOT
    finally:
        backend.close()
