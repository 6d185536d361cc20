"""What the exports look like: grouping, selectors, PCI device filters, counts, comments.

Why this exists: the round-trip properties prove that exports load back; these tests pin
the shape a person or mig-parted reads: identical GPUs in one entry, ``select: {index:
[...]}``, mig-parted ``device-filter`` from the catalog's PCI ids, counts per profile,
CI keys, the comment about dropped placements, and refusals for what mig-parted cannot
express. Expected documents are written out by hand. Test-only.
"""

from __future__ import annotations

import pytest
import yaml

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.layout import GpuLayout, WantedInstance, to_mig_parted, to_native


def full(profile: str, start: int | None = None) -> WantedInstance:
    return WantedInstance(profile, start, (profile,))


def test_native_export_groups_identical_gpus(catalog: Catalog) -> None:
    h100, l40s = catalog.get("h100"), catalog.get("l40s")
    small = GpuLayout(True, (full("1g.10gb"), full("1g.10gb"), full("3g.40gb", 4)))
    text = to_native(
        {0: small, 1: small, 2: GpuLayout(False), 3: small},
        {0: h100, 1: h100, 2: l40s, 3: h100},
        description='says "hi": ok',
    )
    assert "# GPUs 0-1,3: NVIDIA H100 80GB HBM3 (SXM5)" in text
    assert "# GPU 2: NVIDIA L40S" in text
    assert yaml.safe_load(text) == {
        "apiVersion": "migctl/v1",
        "kind": "Layouts",
        "layouts": {
            "exported": {
                "description": 'says "hi": ok',
                "gpus": [
                    {
                        "select": {"index": [0, 1, 3]},
                        "mig": True,
                        "instances": [
                            {"profile": "3g.40gb", "count": 1, "placement": [4]},
                            {"profile": "1g.10gb", "count": 2},
                        ],
                    },
                    {"select": {"index": [2]}, "mig": False},
                ],
            }
        },
    }


def test_native_export_writes_ci_layouts_but_not_default_ones(catalog: Catalog) -> None:
    a100 = catalog.get("a100-sxm4-40gb")
    layout = GpuLayout(
        True,
        (
            WantedInstance("3g.20gb", None, ("2c.3g.20gb", "1c.3g.20gb")),
            WantedInstance("1g.10gb", None, ()),
            full("2g.10gb"),
        ),
    )
    document = yaml.safe_load(to_native({0: layout}, {0: a100}, name="lab"))
    instances = document["layouts"]["lab"]["gpus"][0]["instances"]
    assert instances == [
        {"profile": "1g.10gb", "count": 1, "compute": []},
        {"profile": "2g.10gb", "count": 1},
        {"profile": "3g.20gb", "count": 1, "compute": ["2c.3g.20gb", "1c.3g.20gb"]},
    ]


def test_mig_parted_export(catalog: Catalog) -> None:
    h100, a30 = catalog.get("h100"), catalog.get("a30")
    layout = GpuLayout(
        True,
        (
            full("1g.10gb", 0),
            full("1g.10gb"),
            WantedInstance("3g.40gb", None, ("1c.3g.40gb",)),
        ),
    )
    text = to_mig_parted({0: layout, 1: layout, 2: GpuLayout(True)}, {0: h100, 1: h100, 2: a30})
    assert "# placements not kept: 1g.10gb at 0" in text
    assert yaml.safe_load(text) == {
        "version": "v1",
        "mig-configs": {
            "exported": [
                {
                    "device-filter": ["0x233010DE"],
                    "devices": [0, 1],
                    "mig-enabled": True,
                    "mig-devices": {"1g.10gb": 2, "1c.3g.40gb": 1},
                },
                {
                    "device-filter": ["0x20B710DE"],
                    "devices": [2],
                    "mig-enabled": True,
                    "mig-devices": {},
                },
            ]
        },
    }


def test_mig_parted_groups_by_model_too(catalog: Catalog) -> None:
    off = GpuLayout(False)
    text = to_mig_parted(
        {0: off, 1: off}, {0: catalog.get("h100"), 1: catalog.get("a100-pcie-40gb")}
    )
    entries = yaml.safe_load(text)["mig-configs"]["exported"]
    assert entries == [
        {"device-filter": ["0x233010DE"], "devices": [0], "mig-enabled": False},
        {"device-filter": ["0x20B110DE", "0x20F110DE"], "devices": [1], "mig-enabled": False},
    ]


def mig_devices(text: str) -> dict[int, dict[str, int]]:
    entries = yaml.safe_load(text)["mig-configs"]["exported"]
    return {gpu: entry.get("mig-devices") or {} for entry in entries for gpu in entry["devices"]}


def test_mig_parted_counts_compute_instances_as_mig_parted_reads_a_gpu(catalog: Catalog) -> None:
    h100 = catalog.get("h100")
    shared = GpuLayout(True, (WantedInstance("3g.40gb", None, ("2c.3g.40gb", "1c.3g.40gb")),))
    empty = GpuLayout(
        True, (WantedInstance("3g.40gb", None, ()), WantedInstance("1g.10gb", 0, ("1g.10gb",)))
    )
    text = to_mig_parted({0: shared, 1: empty}, {0: h100, 1: h100})
    assert mig_devices(text) == {0: {"2c.3g.40gb": 1, "1c.3g.40gb": 1}, 1: {"1g.10gb": 1}}
    assert "without compute instances not kept: 3g.40gb" in text
    assert "placements not kept: 1g.10gb at 0" in text
    assert "differently from how mig-parted packs" not in text  # 2c then 1c: one GI, as here


def test_mig_parted_export_names_gpus_grouped_unlike_mig_parted(catalog: Catalog) -> None:
    """Two 3g.40gb GIs with one 1c each: the counts say 2 x 1c.3g.40gb, which mig-parted
    packs into one GI; the export says so."""
    one_each = GpuLayout(True, (WantedInstance("3g.40gb", None, ("1c.3g.40gb",)),) * 2)
    text = to_mig_parted({0: one_each}, {0: catalog.get("h100")})
    assert mig_devices(text) == {0: {"1c.3g.40gb": 2}}
    assert "differently from how mig-parted packs these counts" in text


def test_gpus_without_mig_are_exported_with_mig_off(catalog: Catalog) -> None:
    models = {0: catalog.get("h100"), 1: catalog.get("l40s")}
    layouts = {0: GpuLayout(True), 1: GpuLayout(False)}
    entries = yaml.safe_load(to_mig_parted(layouts, models))["mig-configs"]["exported"]
    assert [(e["devices"], e["mig-enabled"]) for e in entries] == [([0], True), ([1], False)]
    assert entries[1]["device-filter"] == ["0x26B910DE"]


def test_nothing_to_export_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(InvalidInputError):
        to_native({}, {})
    with pytest.raises(InvalidInputError):
        to_mig_parted({}, {})
