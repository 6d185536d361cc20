"""``migctl lease ...`` and ``migctl env`` in-process: JSON shapes, selection, errors, history."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migctl.backends.select import open_backend
from migctl.cli.main import run
from migctl.leases import DeviceRequest, LeaseOwner, LeaseStore
from migctl.tenancy.selection import candidates
from migctl.workflow import create_gpu_instances, parse_profile_requests, set_mode

MACHINE = "h100-single"


@pytest.fixture(autouse=True)
def lease_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leases.db"
    monkeypatch.setenv("MIGCTL_LEASE_DB", str(path))
    monkeypatch.setenv("MIGCTL_SIM", MACHINE)
    return path


@pytest.fixture
def devices() -> dict[str, str]:
    """2g.20gb at 0, 1g.10gb at 2, 3g.40gb at 4 on the simulated H100 (slice 3 is free):
    profile -> uuid."""
    backend = open_backend(MACHINE)
    try:
        set_mode(backend, [0], True)
        requests = parse_profile_requests(backend.live_model(0), "2g.20gb:0,1g.10gb:2,3g.40gb:4", 0)
        create_gpu_instances(backend, 0, requests, with_ci=True)
        return {d.ci_profile: d.uuid for d in backend.mig_devices(0)}
    finally:
        backend.close()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "-o", "json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    assert data["schema"] == "migctl/v2"
    return data


def test_acquire_by_profile_memory_sms_and_device(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str]
) -> None:
    by_profile = cli_json(capsys, "lease", "acquire", "--profile", "1g.10gb", "--job", "a")
    assert by_profile["kind"] == "Lease"
    lease = by_profile["lease"]
    assert (lease["uuid"], lease["job"], lease["active"]) == (devices["1g.10gb"], "a", True)
    assert by_profile["environment"]["CUDA_VISIBLE_DEVICES"] == devices["1g.10gb"]
    by_memory = cli_json(capsys, "lease", "acquire", "--memory", "12GiB")["lease"]
    assert by_memory["uuid"] == devices["2g.20gb"]
    by_device = cli_json(capsys, "lease", "acquire", "--device", devices["3g.40gb"], "--ttl", "5m")
    assert by_device["lease"]["ttl_seconds"] == 300.0
    code, _, err = cli(capsys, "lease", "acquire", "--sms", "1")
    assert code == 5 and "taken" in err  # insufficient resources: every device is leased


def test_list_release_renew_and_history(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str]
) -> None:
    first = cli_json(capsys, "lease", "acquire", "--profile", "1g.10gb", "--ttl", "60")["lease"]
    second = cli_json(capsys, "lease", "acquire", "--profile", "2g.20gb", "--job", "x")["lease"]
    listed = cli_json(capsys, "lease", "list")["leases"]
    assert {x["lease_id"] for x in listed} == {first["lease_id"], second["lease_id"]}
    assert [(x["gpu_index"], x["gi_id"]) for x in listed] == sorted(
        (x["gpu_index"], x["gi_id"]) for x in listed
    )
    renewed = cli_json(capsys, "lease", "renew", str(first["lease_id"]), "--ttl", "10m")["lease"]
    assert renewed["ttl_seconds"] == 600.0 and renewed["expires_at"] > first["expires_at"]
    released = cli_json(capsys, "lease", "release", second["uuid"])["lease"]
    assert (released["lease_id"], released["end_reason"]) == (second["lease_id"], "released")
    code, _, err = cli(capsys, "lease", "release", str(second["lease_id"]))
    assert code == 10 and "already ended" in err
    assert [x["lease_id"] for x in cli_json(capsys, "lease", "list")["leases"]] == [
        first["lease_id"]
    ]
    history = cli_json(capsys, "lease", "list", "--all")["leases"]
    assert {x["lease_id"]: x["active"] for x in history} == {
        first["lease_id"]: True,
        second["lease_id"]: False,
    }
    code, out, _ = cli(capsys, "lease", "list", "--all")
    assert code == 0 and "released" in out and second["uuid"] in out


def test_someone_elses_lease(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str], lease_db: Path
) -> None:
    bob = LeaseOwner(user="bob-not-me", uid=4321, host="elsewhere", job="bobs-job")
    with LeaseStore(lease_db) as store:
        backend = open_backend(MACHINE)
        try:
            lease = store.acquire(DeviceRequest(profile="3g.40gb"), bob, candidates(backend))
        finally:
            backend.close()
    code, _, err = cli(capsys, "lease", "release", str(lease.lease_id))
    assert code == 4 and "bob-not-me" in err
    code, out, _ = cli(capsys, "lease", "list")
    assert "bob-not-me" in out and "bobs-job" in out
    code, _, err = cli(capsys, "lease", "acquire", "--device", devices["3g.40gb"])
    assert code == 6 and "bob-not-me" in err  # in use, and by whom
    code, _, err = cli(capsys, "lease", "release", str(lease.lease_id), "--admin")
    if os.geteuid() == 0:
        assert code == 0
        [ended] = cli_json(capsys, "lease", "list", "--all")["leases"]
        assert ended["end_reason"] == "revoked"
    else:
        assert code == 4 and "root" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lease", "acquire", "--memory", "lots"], 2),
        (["lease", "acquire", "--wait", "soon"], 2),
        (["lease", "acquire", "--ttl", "0"], 2),
        (["lease", "acquire", "--profile", "1g.10gb", "--device", "MIG-x"], 2),
        (["lease", "acquire", "--device", "MIG-nope"], 3),
        (["lease", "acquire", "--profile", "7g.80gb"], 5),
        (["lease", "release", "999"], 3),
        (["lease", "renew", "999"], 3),
    ],
)
def test_bad_requests_exit_with_their_code(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str], args: list[str], expected: int
) -> None:
    code, _, err = cli(capsys, *args)
    assert code == expected and err.strip()


def test_create_makes_a_device_in_free_slices(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str]
) -> None:
    taken = cli_json(capsys, "lease", "acquire", "--profile", "1g.10gb")["lease"]
    code, _, _ = cli(capsys, "lease", "acquire", "--profile", "1g.10gb")
    assert code == 5  # the only 1g.10gb is leased
    lease = cli_json(capsys, "lease", "acquire", "--profile", "1g.10gb", "--create")["lease"]
    assert lease["profile"] == "1g.10gb" and lease["uuid"] not in devices.values()
    assert lease["uuid"] != taken["uuid"]
    listed = cli_json(capsys, "list")["gpus"][0]["mig_devices"]
    assert [d["placement"]["start"] for d in listed if d["uuid"] == lease["uuid"]] == [3]
    assert [d["lease"]["lease_id"] for d in listed if d["uuid"] == lease["uuid"]] == [
        lease["lease_id"]
    ]
    code, _, err = cli(capsys, "lease", "acquire", "--profile", "1g.10gb", "--create")
    assert code == 5 and "1g.10gb" in err  # no room left for another one


@pytest.fixture
def holder() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "30"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_env_prints_exports_for_the_holder_process(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str], holder: int, lease_db: Path
) -> None:
    code, out, err = cli(capsys, "env", "--profile", "2g.20gb", "--pid", str(holder))
    assert code == 0, err
    exported = {}
    for line in out.strip().splitlines():
        word, assignment = shlex.split(line)
        assert word == "export"
        name, _, value = assignment.partition("=")
        exported[name] = value
    assert exported["CUDA_VISIBLE_DEVICES"] == exported["NVIDIA_VISIBLE_DEVICES"]
    assert exported["CUDA_VISIBLE_DEVICES"] == devices["2g.20gb"]
    with LeaseStore(lease_db) as store:
        [lease] = store.list_leases()
    assert (lease.pid, str(lease.lease_id)) == (holder, exported["MIGCTL_LEASE_ID"])
    as_json = cli_json(capsys, "env", "--profile", "1g.10gb", "--pid", str(holder))
    assert as_json["kind"] == "LeaseEnvironment"
    assert as_json["environment"]["CUDA_VISIBLE_DEVICES"] == devices["1g.10gb"]


def test_env_lease_ends_with_its_holder(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str], lease_db: Path
) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    assert cli(capsys, "env", "--profile", "1g.10gb", "--pid", str(proc.pid))[0] == 0
    proc.kill()
    proc.wait()
    assert cli_json(capsys, "lease", "list")["leases"] == []
    [ended] = cli_json(capsys, "lease", "list", "--all")["leases"]
    assert ended["end_reason"] == "holder-died"


@pytest.mark.parametrize(
    "argv",
    [
        ["gi", "destroy", "--all", "-i", "0"],
        ["ci", "destroy", "--all", "--gi", "{gi}", "-i", "0"],
        ["ci", "destroy", "--id", "0", "--gi", "{gi}", "-i", "0"],
    ],
    ids=["gi-all", "ci-all", "ci-id"],
)
def test_a_leased_device_is_never_destroyed_by_hand(
    capsys: pytest.CaptureFixture[str], devices: dict[str, str], argv: list[str]
) -> None:
    """Before: `gi destroy` and `ci destroy` destroyed a leased MIG device under its holder."""
    lease = cli_json(capsys, "lease", "acquire", "--device", devices["1g.10gb"])["lease"]
    args = [a.format(gi=lease["gi_id"]) for a in argv]
    code, _, err = cli(capsys, *args)
    assert code == 6, err
    assert "cannot destroy leased MIG devices" in err and str(lease["lease_id"]) in err
    listed = cli_json(capsys, "list")["gpus"][0]["mig_devices"]
    assert {d["uuid"] for d in listed} == set(devices.values())  # nothing was destroyed
    assert cli(capsys, "lease", "release", str(lease["lease_id"]))[0] == 0
    assert cli(capsys, *args)[0] == 0
