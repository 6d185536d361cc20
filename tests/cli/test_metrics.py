"""`migctl metrics`: Prometheus text that parses, with per-GPU and per-MIG-device series."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from migctl.backends.select import open_backend
from migctl.cli.main import run
from migctl.leases import DeviceCandidate, DeviceRequest, LeaseOwner, LeaseStore


def test_metrics_describe_gpus_devices_and_leases(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(tmp_path / "leases.db"))
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(tmp_path / "state"))
    assert run(["--sim", "h100-single", "split", "3"]) == 0
    backend = open_backend("h100-single")
    devices = backend.mig_devices(0)
    backend.close()
    with LeaseStore(tmp_path / "leases.db") as store:
        owner = LeaseOwner(user="alice", uid=1000, host="h")
        store.acquire(
            DeviceRequest(uuid=devices[0].uuid),
            owner,
            [DeviceCandidate.from_mig_device(d) for d in devices],
        )
    capsys.readouterr()
    assert run(["--sim", "h100-single", "metrics"]) == 0
    text = capsys.readouterr().out
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["migctl_gpu_mig_enabled"].samples[0].value == 1
    assert families["migctl_gpu_memory_total_bytes"].samples[0].value == 81559 * 1024 * 1024
    assert families["migctl_gpu_memory_slices_used"].samples[0].value == 6
    infos = families["migctl_mig_device_info"].samples
    assert sorted(s.labels["profile"] for s in infos) == ["2g.20gb"] * 3
    assert {s.labels["uuid"] for s in infos} == {d.uuid for d in devices}
    leased = {
        s.labels["uuid"]: (s.value, s.labels["holder"])
        for s in families["migctl_mig_device_leased"].samples
    }
    assert leased[devices[0].uuid] == (1, "alice") and leased[devices[1].uuid] == (0, "")
    assert families["migctl_leases_active"].samples[0].value == 1
    assert all(name.startswith("migctl_") for name in families)
