"""The catalog: lookups by every name a user or NVML has, honest unknowns, trust, codec.

Why this exists: ``h100``, ``H100-80GB``, ``NVIDIA H100 80GB HBM3`` and PCI id
``0x233010DE`` must all find one model; a GPU without MIG must be told apart from an
unknown one; values nobody published must stay ``None`` rather than be guessed; and
captured models from ``MIGCTL_CATALOG`` must join the packaged ones. Test-only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migctl.catalog import CATALOG_ENV, Catalog, load_catalog, model_from_dict, model_to_dict
from migctl.errors import InvalidInputError, NotFoundError, NotSupportedError
from migctl.model import Trust
from migctl.settings import Settings

NON_MIG = ["rtx-4090", "t4", "v100", "v100-sxm2-32gb", "l40s", "l4", "a10", "rtx-5090"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("h100-80gb-hbm3", "h100-80gb-hbm3"),
        ("h100", "h100-80gb-hbm3"),
        ("H100-80GB", "h100-80gb-hbm3"),
        ("H100_80GB", "h100-80gb-hbm3"),
        ("NVIDIA H100 80GB HBM3", "h100-80gb-hbm3"),
        ("0x2330", "h100-80gb-hbm3"),
        ("0x233010DE", "h100-80gb-hbm3"),
        ("233010de", "h100-80gb-hbm3"),
        ("a100-40gb", "a100-sxm4-40gb"),
        ("h200", "h200-141gb"),
        ("NVIDIA H200", "h200-141gb"),
        ("0x233510DE", "h200-141gb"),
        ("a30", "a30-24gb"),
        ("Tesla T4", "t4"),
        ("rtx-pro-6000", "rtx-pro-6000-server"),
    ],
)
def test_lookup_finds_the_model(catalog: Catalog, text: str, key: str) -> None:
    assert catalog.get(text).key == key
    assert catalog.find(text) is catalog.get(text)


def test_pci_lookup_accepts_both_forms(catalog: Catalog) -> None:
    model = catalog.get("h100")
    assert catalog.by_pci_device_id(0x2330) is model
    assert catalog.by_pci_device_id(0x233010DE) is model
    assert catalog.for_gpu("some renamed GPU", 0x233010DE) is model
    assert catalog.for_gpu("NVIDIA H100 80GB HBM3", 0xFFFF10DE) is model
    assert catalog.by_pci_device_id(0xFFFF) is None


def test_every_model_is_found_by_its_key_and_aliases(catalog: Catalog) -> None:
    keys = [m.key for m in catalog.models]
    assert len(keys) == len(set(keys)), "duplicate catalog keys"
    for model in catalog.models:
        for name in (model.key, *model.aliases):
            assert catalog.get(name) is model, name


def test_unknown_name_is_not_found_with_a_hint(catalog: Catalog) -> None:
    assert catalog.find("quantum-gpu-9000") is None
    with pytest.raises(NotFoundError) as caught:
        catalog.get("quantum-gpu-9000")
    error = caught.value
    assert "quantum-gpu-9000" in error.message
    assert error.hint is not None
    assert "h100-80gb-hbm3" in error.hint and "a30-24gb" in error.hint
    assert "rtx-4090" not in error.hint


@pytest.mark.parametrize("name", NON_MIG)
def test_non_mig_gpu_is_known_but_not_supported(catalog: Catalog, name: str) -> None:
    model = catalog.get(name)
    assert not model.mig_capable
    assert model not in catalog.mig_models
    with pytest.raises(NotSupportedError) as caught:
        catalog.get_mig(name)
    error = caught.value
    assert "MIG is not supported on" in error.message
    assert model.name in error.message
    assert error.hint is not None
    listed = {part.strip() for part in error.hint.split(":", 1)[1].split(",")}
    assert listed == {m.key for m in catalog.mig_models}


def test_get_mig_returns_mig_models(catalog: Catalog) -> None:
    assert catalog.get_mig("h100").key == "h100-80gb-hbm3"
    assert all(m.mig_capable for m in catalog.mig_models)
    assert {"h100-80gb-hbm3", "a30-24gb", "rtx-pro-6000-server"} <= {
        m.key for m in catalog.mig_models
    }


def test_unknown_values_stay_none(catalog: Catalog) -> None:
    assert catalog.get("a30").total_memory_mib is None
    b300 = catalog.get("b300")
    assert b300.gi_profiles
    assert all(p.id is None for p in b300.gi_profiles)
    h100_pcie = catalog.get("h100-pcie")
    assert all(p.memory_mib is None for p in h100_pcie.gi_profiles if p.short == "1g")


@pytest.mark.parametrize(
    ("key", "trust"),
    [
        ("h100-80gb-hbm3", Trust.VERIFIED),
        ("h200-141gb", Trust.VERIFIED),
        ("a30-24gb", Trust.TRANSCRIPT),
        ("a100-40gb", Trust.TRANSCRIPT),
        ("h100-nvl", Trust.TRANSCRIPT),
        ("rtx-pro-6000-server", Trust.TRANSCRIPT),
    ],
)
def test_trust_levels(catalog: Catalog, key: str, trust: Trust) -> None:
    assert catalog.get(key).trust is trust


def test_inferred_placements_are_not_verified(catalog: Catalog) -> None:
    inferred = [
        m for m in catalog.mig_models if any(not p.placements_verified for p in m.gi_profiles)
    ]
    assert {"gh200-96gb", "b200-180gb", "h200-nvl-141gb"} <= {m.key for m in inferred}
    for model in inferred:
        assert not model.placements_verified, model.key
    for key in ("h100", "h200", "a30", "a100-40gb", "rtx-pro-6000-server"):
        assert catalog.get(key).placements_verified, key


def test_codec_round_trips_every_model(catalog: Catalog) -> None:
    for model in catalog.models:
        raw = model_to_dict(model)
        assert model_from_dict(json.loads(json.dumps(raw))) == model, model.key


def test_malformed_model_is_invalid_input(catalog: Catalog) -> None:
    raw = model_to_dict(catalog.get("h100"))
    del raw["gi_profiles"][0]["compute_slices"]
    with pytest.raises(InvalidInputError) as caught:
        model_from_dict(raw, "broken.json")
    assert "broken.json" in caught.value.message and "h100-80gb-hbm3" in caught.value.message


def captured_model_file(catalog: Catalog, tmp_path: Path) -> Path:
    """A ``migctl catalog capture``-style file: an H100 geometry under a new name and PCI id."""
    raw = model_to_dict(catalog.get("h100"))
    raw.update(
        key="test-gpu-80gb",
        name="NVIDIA Test GPU 80GB",
        nvidia_smi_name="NVIDIA Test GPU 80GB",
        pci_device_ids=["0x2FFF"],
        aliases=["testgpu"],
        trust="captured",
    )
    path = tmp_path / "captured.json"
    path.write_text(json.dumps({"models": [raw]}))
    return path


def test_catalog_env_file_adds_a_model(catalog: Catalog, tmp_path: Path) -> None:
    path = captured_model_file(catalog, tmp_path)
    assert catalog.find("test-gpu-80gb") is None
    files = Settings.from_env({CATALOG_ENV: str(path)}, euid=1000).catalog_files
    extended = load_catalog(files)
    model = extended.get("test-gpu-80gb")
    assert model.trust is Trust.CAPTURED
    assert extended.get("testgpu") is model
    assert extended.get("NVIDIA Test GPU 80GB") is model
    assert extended.by_pci_device_id(0x2FFF10DE) is model
    assert model.gi_profiles == catalog.get("h100").gi_profiles
    assert len(extended.models) == len(catalog.models) + 1
    assert extended.get("h100") == catalog.get("h100")


def test_extra_file_argument_and_bad_files(catalog: Catalog, tmp_path: Path) -> None:
    path = captured_model_file(catalog, tmp_path)
    assert load_catalog([path]).get("testgpu").key == "test-gpu-80gb"
    with pytest.raises(NotFoundError):
        load_catalog([tmp_path / "missing.json"])
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(InvalidInputError):
        load_catalog([garbage])
    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text(json.dumps({"gpus": []}))
    with pytest.raises(InvalidInputError):
        load_catalog([wrong_shape])
